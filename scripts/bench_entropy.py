"""The rANS core against constriction; same as `ncodec bench entropy` (see --help)."""
import sys

from ncodec.bench.entropy import main

main(sys.argv[1:])
