"""Signal transforms without learned parameters: lifting wavelets (`wavelet`: integer 5/3, 9/7,
integer 9/7 in 1D/2D/3D) and mel-scale spectral features (`mel`)."""
