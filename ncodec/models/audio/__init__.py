"""Neural audio codec networks: SEANet (`seanet`), EnCodec- (`encodec`) and DAC-compatible (`dac`) models,
and chunked streaming execution of SEANet models (`streaming`)."""
