"""Implicit neural representation codecs: the signal is coded by fitting a small network to it.

- `layers`: SIREN and Fourier-feature MLPs (coordinate networks).
- `latents`: hierarchical latent grids, their 2x upsampling, the tiny synthesis network.
- `arm`: the autoregressive entropy model over causal neighbours and its bit-exact coder.
- `tables`: the integer Laplace tables latents and weights are coded with.
- `quantize`: quantization proxies (noise, soft-rounding, straight-through).
- `fit`: the one rate-distortion training loop, presets ``fast`` / ``medium`` / ``slow``.
- `weights`: per-tensor rate-distortion quantization and coding of the decoder networks.
- `image`: the Cool-chic / C3 style image model that the ``inr`` codec
  (`ncodec.codecs.image.inr`) fits and codes.
- `nerv`: the HNeRV style video model (per-frame integer embeddings, upsampling conv blocks)
  that the ``nerv`` codec (`ncodec.codecs.video.nerv`) fits and codes.
"""
