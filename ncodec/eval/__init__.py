"""The evaluation harness: every codec (ncodec's and classical peers) on the same files, at the
same operating points, with rate-distortion curves and BD-rates (``ncodec eval``)."""
