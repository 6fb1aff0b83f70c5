"""The benchmarks' data sets: builders (20 Newsgroups, Debian descriptions, long documents, cached encoder states)
and judged query sets (``search_modes/``). Built files go to the harness's ``CACHE``, never into git."""
