"""The TF-NAS search: supernet training with bi-sampling, sink-connecting and elasticity-scaling."""
