"""Stand-in for torchvision.transforms: empty, CompressAI only copies its capitalised names."""
