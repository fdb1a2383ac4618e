"""The embedding path: draining the change queue through a model into the outputs."""
