"""Model backends: one async interface in front of each way of reaching a model."""
