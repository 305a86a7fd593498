"""rnnexp's Hydra sweeper and launcher, on Hydra's public plugin API.

``hydra/sweeper=rnnexp`` launches the jobs rnnexp's CLI planned and recorded in the sweep dir's
manifest (on resume, only those without an ok row); ``hydra/launcher=rnnexp`` runs them in turn in
this process, each composed once (``_compose``). Hydra finds both by scanning the ``hydra_plugins``
namespace package.
"""
