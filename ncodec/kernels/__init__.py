"""GPU kernels (Triton / CUDA) for the entropy coder and other hot paths live in this package."""
