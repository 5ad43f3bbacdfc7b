"""The networks (``nn.Module`` objects): they know nothing of codecs, streams or files.

- `image`: the hyperprior family (bmshj2018 factorized / hyperprior, mbt2018 mean-scale, a
  Gaussian-mixture variant) and their layers (GDN);
- `audio`: SEANet, the EnCodec- and DAC-compatible codec models, and their streaming runner;
- `inr`: the overfitted (implicit neural representation) image and video models and their fitting;
- `learned_lifting`: an iWave-style learned integer lifting scheme, reversible by construction;
- `exact`: bit-exact integer evaluation of small conv networks (what makes hyperprior streams
  decode on any device).

Loading and converting weights is the zoo's job (`ncodec.zoo`).
"""
