"""Built-in codecs; importing this package registers them."""
from .audio import lossless as _audio_lossless  # noqa: F401
from .audio import neural as _neural_audio  # noqa: F401
from .image import inr as _inr  # noqa: F401
from .image import learned as _learned  # noqa: F401
from .image import learned_wavelet as _learned_wavelet  # noqa: F401
from .image import wavelet_lossless as _wavelet_lossless  # noqa: F401
from .image import wavelet_lossy as _wavelet_lossy  # noqa: F401
from .video import nerv as _nerv  # noqa: F401
