"""Connector operations as Kafka Connect's REST API has them (status, pause, stop, offsets, validate, add,
delete), in plain Python: one service (``service.py``) the REST endpoint, the CLI and the UI job share."""
