"""Training data: source readers, HDR -> SDR operators, MATLAB-style bicubic downscaling,
the TFRecord pair format and the `sritm prepare` pipeline."""
