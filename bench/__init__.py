"""Benchmarks: each prints a table against baselines measured in the same run (``report.py``)."""
