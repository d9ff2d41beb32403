"""Sources: a runtime that delivers any reader's records exactly once (``runtime.py``), offsets
(``offsets.py``), the JDBC reader (``jdbc.py``) with one querier per mode (``queriers.py``),
the no-skip gate (``gate.py``), the change probe for sensors (``probe.py``), and change data
capture from the binary log (``cdc/``)."""
