"""The torch engine: pure PyTorch ops (no custom CUDA extensions), NCHW, CPU or CUDA."""
