"""audio-lossless against FLAC level 8; same as `ncodec bench lossless-audio` (see --help)."""
import sys

from ncodec.bench.lossless_audio import main

main(sys.argv[1:])
