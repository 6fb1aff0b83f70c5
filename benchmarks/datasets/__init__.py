"""The benchmarks' data sets: the builders and the judged query sets.

Builders: 20 Newsgroups, Debian package descriptions, long documents, cached encoder states; judged queries:
``search_modes/``. Built files go to the harness's ``CACHE``, never into git.
"""
