"""rnnexp's Hydra sweeper and launcher: each job's config composed once, composition errors recorded as rows.

Select them with ``hydra/sweeper=rnnexp hydra/launcher=rnnexp``. Hydra finds them by scanning the
``hydra_plugins`` namespace package; the logic lives in ``_core`` (running) and ``_errors`` (error rows).
"""
