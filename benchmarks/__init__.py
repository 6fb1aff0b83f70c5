"""semhash's benchmarks: one ``bench_*.py`` per question, the data sets they build, and the harness they share.

Run from the repository root as modules (``python -m benchmarks.bench_rerank``); see ``benchmarks/README.md``.
"""
