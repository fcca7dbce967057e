"""Folder ``benchmarks/``, imported as ``slmkit.benchmarks``: ``slmkit bench`` and ``slmkit check`` (the
scenario run in each worker, its launcher, machine facts, task-level scoring, the report schema, report
files and plots). The developers' campaigns live outside the package, in ``devtools/``; measured figures
are recorded in ``RESULTS.md``."""
