"""Stand-in for torchvision (see ../README.md): only what `import compressai` touches."""
__version__ = "0+ncodec.stand.in"
