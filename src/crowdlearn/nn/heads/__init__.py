"""The heads of the methods in :mod:`crowdlearn.nn.methods` (one module per method; torch)."""
