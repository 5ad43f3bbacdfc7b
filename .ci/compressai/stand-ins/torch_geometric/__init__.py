"""Stand-in for torch_geometric (see ../README.md): only what `import compressai` touches."""
__version__ = "0+ncodec.stand.in"
