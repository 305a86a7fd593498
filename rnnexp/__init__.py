"""rnnexp: config-driven experiments on recurrent networks' shapes, speed and hidden-state dynamics."""

from rnnexp._version import __version__
from rnnexp.api import load, run  # the Python API: it imports pandas, Hydra and torch only when called
from rnnexp.config import ConfigError  # what rnnexp.run raises for a key or value the config refuses
from rnnexp.configfiles import ConfigFileError  # ... and for a config file that does not parse

__all__ = ["ConfigError", "ConfigFileError", "__version__", "history", "load", "run"]


def history(store=None):
    """Every job row in the history store (default ``outputs/history.duckdb``) as a pandas DataFrame.

    One row per stored job row, oldest sweep first, with its sweep's ``sweep_id``, ``machine`` and
    ``started_utc`` before the row's own columns (declared dtypes). DuckDB is imported only here.
    """
    from rnnexp import store as _store

    return _store.select(store)[0]
