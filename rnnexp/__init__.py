"""rnnexp: config-driven experiments on recurrent networks' shapes, speed and hidden-state dynamics."""

__version__ = "0.1.0"
