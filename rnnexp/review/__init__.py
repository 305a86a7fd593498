"""The review side: programs that read rnnexp's CSVs (report, compare, summary, baseline, plots).

Nothing here imports torch or Hydra, so ``rnnexp report`` and ``rnnexp compare`` start fast and
run wherever the CSVs are. Every column they use is declared in ``rnnexp.schema``.
"""
