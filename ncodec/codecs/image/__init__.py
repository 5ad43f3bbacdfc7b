"""Image codecs."""
