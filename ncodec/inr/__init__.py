"""Implicit neural representation codecs (SIREN / Fourier features, latent grids, NeRV) live in this package."""
