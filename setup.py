"""Build the native extensions (the rANS coder and the integer LPC filters)."""
import sys

from setuptools import Extension, setup

flags = ["/O2"] if sys.platform == "win32" else ["-O3", "-std=c99", "-fno-strict-aliasing"]

setup(
    ext_modules=[
        Extension("ncodec.entropy._rans", ["ncodec/entropy/_rans.c"], extra_compile_args=flags),
        Extension("ncodec.codecs.audio._lpc", ["ncodec/codecs/audio/_lpc.c"], extra_compile_args=flags),
    ]
)
