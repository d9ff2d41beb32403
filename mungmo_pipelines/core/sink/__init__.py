"""Sinks: the runtime (``runtime.py``: drain loop, batches, retries), offsets stored in the target
database (``offsets.py``), records to row changes (``records.py``), target tables (``tables.py``),
one writer per ``insert.mode`` plus delete (``writers.py``), and lag (``lag.py``)."""
