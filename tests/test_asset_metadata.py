"""The metadata Dagster's own integrations give table assets: names, columns, row counts, column lineage,
owners, freshness, and the source side's lag on topics."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, TableColumnDep

from mungmo_pipelines.assets.keys import job_name, pipeline_job_name
from mungmo_pipelines.core.config.loader import load_connectors
from mungmo_pipelines.core.settings import ASSET_OWNERS
from mungmo_pipelines.definitions import build_definitions
from tests.support.sandbox import Sandbox
from tests.support.source import writer
from tests.support.tables import TEST001

COLUMNS = ["seq", "member_name", "pet_name", "walk_note", "weight_kg", "neutered", "born", "created_at"]
INSERT = "INSERT INTO test001 (member_name, pet_name, neutered, created_at) VALUES ('멍멍', '보리', 1, NOW(3))"


class Pair:
    """A source on ``test001`` of a private database and a sink writing its topic to another one."""

    def __init__(self, sandbox: Sandbox, tmp_path: Path) -> None:
        self.source_db, self.target_db = sandbox.database("src"), sandbox.database("dst")
        sandbox.execute(self.source_db, TEST001)
        self.topic = sandbox.topic("test001")
        self.source = sandbox.source_body(
            self.source_db, mode="incrementing", **{"incrementing.column.name": "seq", "table.whitelist": "test001"}
        )
        self.sink = sandbox.sink_body(self.target_db, topics=self.topic, **{"auto.create": "true"})
        for body in (self.source, self.sink):
            (tmp_path / f"{body['name']}.json").write_text(json.dumps(body))
        connectors = load_connectors(tmp_path)
        self.defs: Definitions = build_definitions(connectors)
        self.pipeline_job = pipeline_job_name(connectors.sources[0])
        self.source_key = AssetKey([self.source_db, "test001"])
        self.topic_key = AssetKey(["kafka", self.topic])
        self.target_key = AssetKey([self.target_db, self.topic])


@pytest.fixture
def pair(sandbox: Sandbox, tmp_path: Path) -> Pair:
    return Pair(sandbox, tmp_path)


def metadata_of(events: list, key: AssetKey) -> dict:
    (event,) = [e for e in events if e.asset_key == key]
    return {name: value.value for name, value in event.metadata.items()}


def test_a_pipeline_run_records_what_dagster_sling_and_dlt_record(sandbox: Sandbox, pair: Pair) -> None:
    sandbox.execute(pair.source_db, *[INSERT] * 4)
    with DagsterInstance.ephemeral() as instance:
        result = pair.defs.resolve_job_def(pair.pipeline_job).execute_in_process(instance=instance)
    assert result.success
    observed = [e.asset_observation_data.asset_observation for e in result.all_events if e.is_asset_observation]
    materialized = [e.materialization for e in result.get_asset_materialization_events()]

    source = metadata_of(observed, pair.source_key)
    assert source["dagster/table_name"] == f"{pair.source_db}.test001"
    assert source["dagster/row_count"] == 4
    assert [c.name for c in source["dagster/column_schema"].columns] == COLUMNS
    seq = source["dagster/column_schema"].columns[0]
    assert (seq.type, seq.constraints.nullable, seq.constraints.unique) == ("int(11)", False, True)
    assert source["dagster/column_schema"].columns[2].constraints.nullable

    topic = metadata_of(materialized, pair.topic_key)
    assert topic["dagster/column_lineage"].deps_by_column == {
        column: [TableColumnDep(pair.source_key, column)] for column in COLUMNS
    }
    assert (topic["source_lag"], topic["source_lag_unit"]) == (0, "ids")

    target = metadata_of(materialized, pair.target_key)
    assert target["dagster/table_name"] == f"{pair.target_db}.{pair.topic}"
    assert target["dagster/row_count"] == 4
    assert [c.name for c in target["dagster/column_schema"].columns] == COLUMNS
    assert target["dagster/column_lineage"].deps_by_column == {
        column: [TableColumnDep(pair.topic_key, column)] for column in COLUMNS
    }
    assert target["rows_inserted"] == 4

    # The UI's "Observe" on the source table (an observable source asset): the same facts, on demand.
    sandbox.execute(pair.source_db, INSERT)
    with DagsterInstance.ephemeral() as instance:
        observed_now = (
            pair.defs.resolve_implicit_global_asset_job_def()
            .execute_in_process(instance=instance, asset_selection=[pair.source_key])
            .asset_observations_for_node(f"{job_name(pair.source['name'])}_tables")
        )
    (observation,) = observed_now
    assert observation.metadata["dagster/row_count"].value == 5
    assert pair.defs.resolve_asset_graph().get(pair.source_key).is_observable


def test_source_lag_counts_the_ids_held_back_behind_an_open_transaction(sandbox: Sandbox, pair: Pair) -> None:
    sandbox.execute(pair.source_db, *[INSERT] * 2)
    open_transaction = writer(pair.source_db)
    try:
        with open_transaction.cursor() as cursor:
            cursor.execute(INSERT)  # id 3, not committed: the source may not pass it
        sandbox.execute(pair.source_db, *[INSERT] * 2)  # ids 4 and 5, committed
        with DagsterInstance.ephemeral() as instance:
            result = pair.defs.resolve_job_def(job_name(pair.source["name"])).execute_in_process(instance=instance)
    finally:
        open_transaction.rollback()
        open_transaction.close()
    (event,) = result.get_asset_materialization_events()
    metadata = {name: value.value for name, value in event.materialization.metadata.items()}
    print({k: metadata[k] for k in ("rows_read", "offset_after", "held_back", "source_lag", "source_lag_unit")})
    assert metadata["held_back"] != "nothing"
    delivered = metadata["offset_after"].get("incrementing", 0)
    assert (metadata["source_lag"], metadata["source_lag_unit"]) == (5 - delivered, "ids")
    assert metadata["source_lag"] >= 3


def test_specs_carry_owners_kinds_table_names_and_a_freshness_policy_from_the_poll_interval(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    graph = pair.defs.resolve_asset_graph()
    for key in (pair.source_key, pair.topic_key, pair.target_key):
        assert graph.get(key).owners == ["team:mungmo"], key
    assert graph.get(pair.source_key).metadata["dagster/table_name"] == f"{pair.source_db}.test001"
    assert {"mariadb", "table"} <= set(graph.get(pair.target_key).kinds)
    assert "kafka" in graph.get(pair.topic_key).kinds
    policy = graph.get(pair.target_key).freshness_policy
    # poll.interval.ms 5000 (the default): WARN after 720 polls without a write (an hour), FAIL after a day
    assert (policy.warn_window.to_timedelta(), policy.fail_window.to_timedelta()) == (
        timedelta(hours=1),
        timedelta(days=1),
    )
    assert graph.get(pair.topic_key).freshness_policy is None

    monkeypatch.setenv(ASSET_OWNERS.name, "data@mungmo.example, team:pets")
    assert build_definitions(load_connectors(tmp_path)).resolve_asset_graph().get(pair.target_key).owners == [
        "data@mungmo.example",
        "team:pets",
    ]
    monkeypatch.setenv(ASSET_OWNERS.name, "data team")
    with pytest.raises(ValueError, match=r"MUNGMO_ASSET_OWNERS: expected comma-separated e-mail addresses"):
        build_definitions(load_connectors(tmp_path))
