"""rnnexp's version, alone in its module: the package's ``__init__`` is the API's edge, which no layer below imports."""

__version__ = "0.1.0"
