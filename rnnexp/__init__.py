"""rnnexp: config-driven experiments on recurrent networks' shapes, speed and hidden-state dynamics."""

__version__ = "0.1.0"


def history(store=None):
    """Every job row in the history store (default ``outputs/history.duckdb``) as a pandas DataFrame.

    One row per stored job row, oldest sweep first, with its sweep's ``sweep_id``, ``machine`` and
    ``started_utc`` before the row's own columns (declared dtypes). DuckDB is imported only here.
    """
    from rnnexp import store as _store

    return _store.select(store)[0]
