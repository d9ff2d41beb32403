"""Connector operations in the Dagster layer: the Kafka Connect-compatible REST endpoint (``rest.py``), the
``mungmo-connect`` CLI (``cli.py``), the UI's ``connector_operations`` job (``job.py``), what Dagster
knows about a connector (``orchestrator.py``) and how a connector that did not load shows (``load_errors.py``).
The operations themselves are in ``core/operations``."""
