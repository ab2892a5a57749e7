"""Low-dimensional problems run with plain full-batch or minibatch loops (no Lightning)."""
