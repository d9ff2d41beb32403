"""Consistency checks (정합): prove a source table and its replicated target equal, or name the rows
that differ, with the database doing the hashing.

- ``expressions``: what a pipeline carries per column (``ValueForm``) and the canonical SQL that
  makes a source column and the target column the sink chose read the same when they hold the
  same carried value;
- ``catalog``: both tables as ``information_schema`` describes them;
- ``plan``: the compared columns, the key and the per-side SQL built from them;
- ``sides``: one connection per side, its session settings and query accounting;
- ``ranges``: key ranges and the SQL that selects, numbers and groups them;
- ``chunks``: pt-table-checksum-style chunk checksums, sized by time, split into pieces;
- ``diff``: bisection of differing pieces down to rows, and row fetches by key;
- ``policy``: which differences a replication mode explains;
- ``jdbc``: a JDBC source and sink connector pair as a comparison and a policy;
- ``cdc``: a Debezium CDC source and a sink of its change events as a comparison, what the source
  carries per column (``debezium_forms``) and its binlog rule for rows not sent yet;
- ``result``: the JSON-serializable result;
- ``check``: the orchestration, with the point / wait / re-check protocol.
"""

from mungmo_pipelines.core.consistency.cdc import cdc_policy, cdc_table_spec, debezium_forms
from mungmo_pipelines.core.consistency.check import CheckSettings, SyncPoints, TableSpec, check_table
from mungmo_pipelines.core.consistency.expressions import Domain, ValueForm, jdbc_forms
from mungmo_pipelines.core.consistency.jdbc import jdbc_policy, jdbc_table_spec
from mungmo_pipelines.core.consistency.policy import ModePolicy
from mungmo_pipelines.core.consistency.result import CheckResult, ColumnDifference, RowDifference

__all__ = [
    "CheckResult",
    "CheckSettings",
    "ColumnDifference",
    "Domain",
    "ModePolicy",
    "RowDifference",
    "SyncPoints",
    "TableSpec",
    "ValueForm",
    "cdc_policy",
    "cdc_table_spec",
    "check_table",
    "debezium_forms",
    "jdbc_forms",
    "jdbc_policy",
    "jdbc_table_spec",
]
