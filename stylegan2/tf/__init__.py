"""The tf1 engine: TensorFlow 1.15 graph mode, plain TF ops (no custom CUDA plugins), NHWC activations."""
