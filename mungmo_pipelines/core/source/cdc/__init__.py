"""Change data capture with Debezium's MariaDB connector bodies, as a reader of the source runtime:
the run (``reader.py``: checks, snapshot or stream, offsets, heartbeats), the initial snapshot
(``snapshot.py``), incremental snapshots (``incremental.py``), offsets in Debezium's shape
(``offsets.py``), captured tables and their encoders (``tables.py``) and the sensor's probe
(``probe.py``). See docs/cdc.md."""
