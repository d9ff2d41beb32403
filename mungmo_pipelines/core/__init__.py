"""The core: plain Python that does the work, with no Dagster imports.

The Kafka Connect-compatible JDBC source and sink (config, record format, type mapping,
offsets) and the scheduled jobs' logic live here; ``mungmo_pipelines``' Dagster layer only
wires them in. Ruff's banned-api rule (``ruff.toml`` beside this file) enforces the split,
so the same code runs under a Dagster job, a benchmark script or a plain test.
"""
