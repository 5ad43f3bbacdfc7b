"""Classical image codecs as harness peers: JPEG, WebP, AVIF, JPEG XL, JPEG 2000 and lossless PNG/WebP/JXL.

All take 8-bit RGB or gray `Image`s and decode to the reference's shape and dtype. Each peer
is a small subclass of `ImagePeer` giving its library's encode / decode calls; the base class
does the input checks, the gray handling and the version string. Libraries that cannot code
a lossy gray image (libwebp; libavif, which turns gray into lossless) get it as RGB and hand
back the rounded channel mean.
"""
from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np

from ...errors import MediaError
from ...media.types import Image
from ..codec import EvalCodec, Knob

_THREADS = 2


def _level(quality: float | None, default: float) -> float:
    """The knob value, or the library's usual default when the harness gives none."""
    return default if quality is None else quality


def _imagecodecs() -> Any:
    try:
        import imagecodecs
    except ImportError:
        raise MediaError("the image peers need imagecodecs: pip install imagecodecs") from None
    return imagecodecs


class ImagePeer(EvalCodec):
    """An image library as a peer: subclasses give ``_encode`` / ``_decode`` and ``_library``."""

    media = "image"
    gray: ClassVar[bool] = True  # the library codes 1-channel images as they are

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        """Compressed bytes of ``pixels`` (HxW gray or HxWx3 RGB uint8)."""
        raise NotImplementedError

    def _decode(self, data: bytes) -> np.ndarray:
        """Pixels (HxW or HxWxC uint8) of ``data``."""
        raise NotImplementedError

    def _library(self) -> str:
        """The library version(s) behind this peer."""
        ic = _imagecodecs()
        return f"imagecodecs {ic.__version__}"

    def encode(self, media: Image, quality: float | None) -> bytes:
        px = media.pixels
        if px.dtype != np.uint8 or px.shape[2] not in (1, 3):
            raise MediaError(f"{self.name} takes 8-bit RGB or gray images, got {px.dtype} with {px.shape[2]} channels")
        if px.shape[2] == 1:
            px = px[:, :, 0] if self.gray else np.repeat(px, 3, axis=2)
        return bytes(self._encode(np.ascontiguousarray(px), quality))

    def decode(self, data: bytes, reference: Image) -> Image:
        px = np.asarray(self._decode(data))
        if px.ndim == 2:
            px = px[:, :, None]
        if reference.channels == 1 and px.shape[2] >= 3:
            px = np.rint(px[:, :, :3].mean(axis=2, keepdims=True))
        if px.shape != reference.pixels.shape:
            raise MediaError(f"{self.name} decoded shape {px.shape}, expected {reference.pixels.shape}")
        return Image(px.astype(np.uint8))

    def version(self) -> str:
        return f"{self._library()}; {self.description}"


class JpegPeer(ImagePeer):
    """JPEG (libjpeg-turbo through imagecodecs) with optimised Huffman tables."""

    name = "jpeg"
    knob = Knob(1, 100)
    subsampling: ClassVar[str] = "420"
    description = "JPEG, libjpeg-turbo (imagecodecs jpeg8), quality 1..100, 4:2:0, optimised Huffman"

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        return _imagecodecs().jpeg8_encode(pixels, level=round(_level(quality, 75)), subsampling=self.subsampling,
                                           optimize=True)

    def _decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpeg8_decode(data)

    def _library(self) -> str:
        return f"{super()._library()} {_imagecodecs().jpeg8_version()}"


class Jpeg444Peer(JpegPeer):
    """JPEG without chroma subsampling."""

    name = "jpeg444"
    subsampling = "444"
    description = "JPEG, libjpeg-turbo (imagecodecs jpeg8), quality 1..100, 4:4:4, optimised Huffman"


class WebpPeer(ImagePeer):
    """Lossy WebP (libwebp), the slowest / best method."""

    name = "webp"
    knob = Knob(0, 100)
    gray = False
    description = "WebP lossy, libwebp (imagecodecs), quality 0..100, method 6, 4:2:0 (gray coded as RGB)"

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        # imagecodecs' webp_encode is lossless unless told otherwise, whatever the level
        return _imagecodecs().webp_encode(pixels, level=float(_level(quality, 75)), lossless=False, method=6)

    def _decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().webp_decode(data)

    def _library(self) -> str:
        return f"{super()._library()} {_imagecodecs().webp_version()}"


class AvifPeer(ImagePeer):
    """AVIF (libavif with libaom), 4:4:4. Quality 100 would switch to lossless, so the knob stops at 99."""

    name = "avif"
    knob = Knob(0, 99)
    gray = False
    description = ("AVIF, libavif + libaom (imagecodecs), quality 0..99, speed 6, 8-bit 4:4:4, "
                   "BT.601 full range (gray coded as RGB)")

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        return _imagecodecs().avif_encode(pixels, level=round(_level(quality, 60)), speed=6, pixelformat="444",
                                          codec="aom", numthreads=_THREADS)

    def _decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().avif_decode(data, numthreads=_THREADS)

    def _library(self) -> str:
        return f"{super()._library()} {_imagecodecs().avif_version()}"


class JxlPeer(ImagePeer):
    """Lossy JPEG XL (libjxl): the knob is cjxl's quality, mapped to a Butteraugli distance by libjxl."""

    name = "jxl"
    knob = Knob(0, 99)
    description = "JPEG XL lossy (VarDCT), libjxl (imagecodecs), quality 0..99 (libjxl's distance map), effort 7"

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        return _imagecodecs().jpegxl_encode(pixels, level=round(_level(quality, 90)), effort=7, lossless=False,
                                            numthreads=_THREADS)

    def _decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpegxl_decode(data, numthreads=_THREADS)

    def _library(self) -> str:
        return f"{super()._library()} {_imagecodecs().jpegxl_version()}"


class J2kPeer(ImagePeer):
    """JPEG 2000 (OpenJPEG): the knob is the PSNR (dB) the encoder's fixed-quality mode aims at."""

    name = "j2k"
    knob = Knob(15.0, 65.0, integer=False)
    description = ("JPEG 2000, OpenJPEG (imagecodecs jpeg2k), knob = target PSNR 15..65 dB (fixed-quality "
                   "layer), irreversible 9/7 DWT, ICT colour transform, up to 6 resolution levels, raw J2K codestream")

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        # levels in [1, 1000] are a PSNR target; other values would mean lossless
        psnr = min(max(float(_level(quality, 40.0)), 1.0), 1000.0)
        return _imagecodecs().jpeg2k_encode(pixels, level=psnr, codecformat="j2k", reversible=False,
                                            numthreads=_THREADS)

    def _decode(self, data: bytes) -> np.ndarray:
        return _imagecodecs().jpeg2k_decode(data, numthreads=_THREADS)

    def _library(self) -> str:
        return f"{super()._library()} {_imagecodecs().jpeg2k_version()}"


class PngPeer(ImagePeer):
    """Lossless PNG by Pillow at its strongest zlib setting."""

    name = "png"
    lossless = True
    description = "PNG lossless, Pillow optimize=True (zlib level 9)"

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        from PIL import Image as PILImage

        buf = io.BytesIO()
        PILImage.fromarray(pixels).save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    def _decode(self, data: bytes) -> np.ndarray:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data)) as im:
            return np.asarray(im)

    def _library(self) -> str:
        import PIL
        from PIL import features

        return f"Pillow {PIL.__version__} zlib {features.version('zlib')}"


class WebpLosslessPeer(WebpPeer):
    """Lossless WebP at its strongest setting."""

    name = "webp-lossless"
    lossless = True
    knob = None
    description = "WebP lossless, libwebp (imagecodecs), quality 100, method 6 (gray coded as RGB)"

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        return _imagecodecs().webp_encode(pixels, level=100, lossless=True, method=6)


class JxlLosslessPeer(JxlPeer):
    """Lossless JPEG XL (modular mode)."""

    name = "jxl-lossless"
    lossless = True
    knob = None
    description = "JPEG XL lossless (modular), libjxl (imagecodecs), effort 7"

    def _encode(self, pixels: np.ndarray, quality: float | None) -> bytes:
        return _imagecodecs().jpegxl_encode(pixels, effort=7, lossless=True, numthreads=_THREADS)


IMAGE_PEERS: tuple[type[ImagePeer], ...] = (JpegPeer, Jpeg444Peer, WebpPeer, AvifPeer, JxlPeer, J2kPeer,
                                            PngPeer, WebpLosslessPeer, JxlLosslessPeer)
