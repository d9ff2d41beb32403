#!/usr/bin/env bash
# bench/cdc_sidebyside.sh [N] — this project's CDC source (a Debezium MariaDB body) against the real
# Debezium MariaDB connector on a Kafka Connect standalone worker, on one machine, in one sitting, on
# the same MariaDB, the same Kafka broker and the same N rows (bench/source.py's walks, ~200 bytes).
#
#   bash bench/cdc_sidebyside.sh [--markdown] [N]   # from the project root, with its .venv; N: 1,000,000
#
# --markdown appends the result tables to docs/performance.md ("Published runs") with the date, the
# commit and the machine, as bench/report.py does for the Python benches.
#
# The peer (Debezium built from Maven Central and run as plain processes) is ../shared/peer's: its
# peerctl.sh starts MariaDB (23306), Kafka (29092/29093) and Connect (28083) and builds the jars into
# $PEER_DIST; nothing of it is part of this project. Debezium runs with the peer's throughput settings
# (sidebyside.sh's PEER_TUNED=1: producer linger.ms 20, batch.size 1 MiB).
#
# Figures (rows/s = N / seconds):
#   snapshot   peer: POST of the source connector -> N records in its topic (snapshot.mode=initial)
#              project: `dagster job execute` of its CDC source's job (snapshot.mode=initial_only):
#              the job's wall time, and the run's own time (RUN_START to the end)
#   streaming  N rows inserted in 1,000-row transactions while the connector streams, first insert ->
#              last record visible in the topic (read_committed for the project, whose producer is
#              transactional). peer: its running connector; project: one run that keeps streaming
#              (mungmo.streaming.duration.ms), started (and seen streaming) before the inserts
#   peak RSS   peer: VmHWM of the Connect JVM (a fresh JVM for the source phases); project: max RSS of
#              each `dagster job execute` process (GNU time)
# State, logs, rendered bodies and results.md go to $PEER_WORK/cdc-sidebyside-N; the peer's processes
# are stopped at the end. Environment: PEER_HOME (../shared/peer), PEER_WORK (${TMPDIR:-/tmp}/peer-work),
# PEER_DIST ($PEER_WORK/dist), PEER_MARIADB_PORT (23306), PEER_KAFKA_PORT (29092), PEER_CONNECT_PORT (28083).
set -euo pipefail

MARKDOWN=0
if [[ "${1:-}" == --markdown ]]; then MARKDOWN=1; shift; fi
N="${1:-1000000}"
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1000 && $((N % 1000)) -eq 0 ]] || { echo "N must be a multiple of 1000" >&2; exit 2; }
PROJECT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
PEER_HOME="$(cd -- "${PEER_HOME:-$PROJECT/../shared/peer}" && pwd -P)"
PY="$PROJECT/.venv/bin/python"
DAGSTER="$PROJECT/.venv/bin/dagster"
[[ -x "$DAGSTER" ]] || { echo "no $DAGSTER: run 'make setup' first" >&2; exit 2; }
GNU_TIME="$(type -P time || true)"
[[ -n "$GNU_TIME" ]] || { echo "GNU time is needed (apt-get install time)" >&2; exit 2; }
export PEER_WORK="${PEER_WORK:-${TMPDIR:-/tmp}/peer-work}"
export PEER_DIST="${PEER_DIST:-$PEER_WORK/dist}"
MDB_PORT="${PEER_MARIADB_PORT:-23306}"
KAFKA="127.0.0.1:${PEER_KAFKA_PORT:-29092}"
REST="127.0.0.1:${PEER_CONNECT_PORT:-28083}"
CTL="$PEER_HOME/peerctl.sh"
HELPER=("$PY" "$PEER_HOME/bench_helper.py")
OUT="$PEER_WORK/cdc-sidebyside-$N"
CFG="$OUT/connectors"
export DAGSTER_HOME="$OUT/dagster_home"
export MUNGMO_DB_PASSWORD="${MUNGMO_DB_PASSWORD:-mungmo-bench}"
export MUNGMO_BENCH_DBZ_PASSWORD=dbzpw  # the peer's replication account (its sql/users.sql)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
ratio() { awk -v p="$1" -v m="$2" 'BEGIN { printf "%.2f", m / p }'; }
log() { echo "[$(date +%T) load $(cut -d' ' -f1 /proc/loadavg)] $*" | tee -a "$OUT/progress.log" >&2; }
sql() { "$CTL" sql "$@"; }
post() { curl -sf -XPOST -H 'Content-Type: application/json' --data @"$1" "$REST/connectors" >/dev/null \
           || { echo "POST $1 failed" >&2; exit 1; }; }
task_state() { curl -s "$REST/connectors/$1/status" | "$PY" -c 'import json,sys; t=json.load(sys.stdin).get("tasks") or [{}]; print(t[0].get("state","?"), (t[0].get("trace") or "")[:400])'; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$("$CTL" pid connect)/status"; }
wait_peer() { # topic n connector -> epoch seconds when the topic's end offsets reached n
  "${HELPER[@]}" wait-offsets "$KAFKA" "$1" "$2" >"$OUT/.t" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if [[ "$(task_state "$3" | cut -d' ' -f1)" == FAILED ]]; then kill "$pid"; echo "$3 failed: $(task_state "$3")" >&2; exit 1; fi
  done
  wait "$pid"; cat "$OUT/.t"
}
wait_committed() { # topic n [timeout s] -> "<epoch seconds> <end offset>" once a read_committed reader's
  # end offsets reach n (transaction markers take offsets too, one per Kafka transaction: about one a
  # second, so n is reached at most that many records early, all of them committed)
  "$PY" - "$KAFKA" "$1" "$2" "${3:-3600}" <<'EOF'
import sys, time
from kafka import KafkaConsumer, TopicPartition
bootstrap, topic, wanted, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False)
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    partitions = consumer.partitions_for_topic(topic)
    end = sum(consumer.end_offsets([TopicPartition(topic, p) for p in partitions]).values()) if partitions else 0
    if partitions and end >= wanted:
        print(f"{time.time():.3f} {end}")
        break
    time.sleep(0.05)
    consumer._client.cluster.request_update()
else:
    sys.exit(f"{topic}: fewer than {wanted} records visible after {timeout:.0f} s")
EOF
}
stream_sql() { # table first_seq count -> 1,000-row INSERT ... SELECT statements (one transaction each)
  local table="$1" a="$2" n="$3" s select
  select="$(sed -n '/^SELECT ELT(1 + MOD(seq, 8)/,/^FROM seq_/p' "$PEER_HOME/sql/walks.sql" | sed '$d' | tr '\n' ' ')FROM"
  for ((s = a; s < a + n; s += 1000)); do
    printf "INSERT INTO %s (member_name, pet_name, pet_kind, neighbourhood, walk_note, weight_kg, created_at) %s seq_%d_to_%d;\n" \
      "$table" "$select" "$s" "$((s + 999))"
  done
}
job() { # job logfile -> JOB_S (wall seconds), JOB_RSS (max RSS, KB)
  (cd "$OUT" && "$GNU_TIME" -f '%e %M' -o "$OUT/.time.$1" "$DAGSTER" job execute -m mungmo_pipelines -j "$1" >"$2" 2>&1) \
    || { tail -n 30 "$2" >&2; echo "job $1 failed (see $2)" >&2; exit 1; }
  read -r JOB_S JOB_RSS <"$OUT/.time.$1"
}
run_facts() { # -> "<run seconds> <events by op as JSON>" of the latest run in $DAGSTER_HOME
  "$PY" - <<'EOF'
import json
from dagster import DagsterEventType, DagsterInstance
instance = DagsterInstance.get()
run = instance.get_runs(limit=1)[0]
stats = instance.get_run_stats(run.run_id)
events = {}
for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
    metadata = record.dagster_event.event_specific_data.materialization.metadata
    events = metadata["events_by_op"].value if "events_by_op" in metadata else events
print(f"{stats.end_time - stats.start_time:.2f} {json.dumps(events, separators=(',', ':'))}")
EOF
}

trap '"$CTL" down >/dev/null 2>&1 || true' EXIT

# ------------------------------------------------------------------ fresh peer stack, the rows
T_START=$(now)
"$CTL" build
"$CTL" reset >/dev/null
rm -rf "$OUT"; mkdir -p "$OUT" "$CFG" "$DAGSTER_HOME"
cp "$PROJECT/.dagster_home/dagster.yaml" "$DAGSTER_HOME/"
: >"$OUT/progress.log"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
log "N=$N; peer from $PEER_HOME; state in $OUT"
"$CTL" up mariadb kafka >>"$OUT/progress.log"
sed "s/@MMPW@/$MUNGMO_DB_PASSWORD/" "$PEER_HOME/sql/users.sql" | sql
t=$(now)
sed "s/@ROWS@/$N/" "$PEER_HOME/sql/walks.sql" | sql bench
log "filled bench.walks with $N rows in $(secs "$t" "$(now)") s"
"$CTL" up connect >>"$OUT/progress.log"

# ------------------------------------------------------------------ the peer: snapshot, then streaming
cat >"$OUT/debezium-source.json" <<EOF
{"name": "dbz-source",
 "config": {
  "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
  "tasks.max": "1",
  "database.hostname": "127.0.0.1",
  "database.port": "$MDB_PORT",
  "database.user": "dbz",
  "database.password": "dbzpw",
  "database.server.id": "184054",
  "database.ssl.mode": "disable",
  "topic.prefix": "dbz",
  "database.include.list": "bench",
  "table.include.list": "bench\\\\.walks,bench\\\\.walks_stream",
  "snapshot.mode": "initial",
  "include.schema.changes": "false",
  "schema.history.internal.kafka.bootstrap.servers": "$KAFKA",
  "schema.history.internal.kafka.topic": "schemahistory.dbz",
  "schema.history.internal.store.only.captured.tables.ddl": "true",
  "poll.interval.ms": "100",
  "producer.override.linger.ms": "20",
  "producer.override.batch.size": "1048576"
 }}
EOF
log "peer snapshot: POST dbz-source"
t0=$(now); post "$OUT/debezium-source.json"
PEER_SNAP_S=$(secs "$t0" "$(wait_peer dbz.bench.walks "$N" dbz-source)")
log "peer snapshot: $N records in $PEER_SNAP_S s"
sql bench -e "$(stream_sql walks_stream 0 1000 | sed 's/seq_0_to_999/seq_0_to_0/')"
wait_peer dbz.bench.walks_stream 1 dbz-source >/dev/null
stream_sql walks_stream 1 "$N" >"$OUT/stream-peer.sql"
log "peer streaming: $N rows in $((N / 1000)) transactions"
t0=$(now); sql bench <"$OUT/stream-peer.sql"; ti=$(now)
PEER_STREAM_S=$(secs "$t0" "$(wait_peer dbz.bench.walks_stream "$((N + 1))" dbz-source)")
PEER_STREAM_INS_S=$(secs "$t0" "$ti")
PEER_HWM_MB=$(($(hwm_kb) / 1024))
log "peer streaming: inserts took $PEER_STREAM_INS_S s, the last record visible after $PEER_STREAM_S s; Connect VmHWM $PEER_HWM_MB MB"
curl -sf -XDELETE "$REST/connectors/dbz-source" >/dev/null
"$CTL" down connect >>"$OUT/progress.log"

# ------------------------------------------------------------------ the project: snapshot, then streaming
project_body() { # name table snapshot.mode [extra JSON options]
  cat >"$CFG/$1.json" <<EOF
{"name": "$1",
 "config": {
  "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
  "database.hostname": "127.0.0.1",
  "database.port": "$MDB_PORT",
  "database.user": "dbz",
  "database.password": "\${env:MUNGMO_BENCH_DBZ_PASSWORD}",
  "database.server.id": "184055",
  "topic.prefix": "mm",
  "database.include.list": "bench",
  "table.include.list": "bench\\\\.$2",
  "snapshot.mode": "$3",
  "offsets.storage.topic": "mm-offsets-$1"${4:-}
 }}
EOF
}
project_body mm-cdc-walks walks initial_only
project_body mm-cdc-stream walks_stream_mm no_data \
  $',\n  "mungmo.streaming.duration.ms": "3600000",\n  "mungmo.streaming.idle.ms": "15000"'
export MUNGMO_CONNECTORS_DIR="$CFG"
export MUNGMO_MARIADB_URL="mysql+pymysql://127.0.0.1:$MDB_PORT"
export MUNGMO_KAFKA_BOOTSTRAP="$KAFKA"

log "project snapshot: dagster job execute -j mm_cdc_walks"
job mm_cdc_walks "$OUT/mm_cdc_walks.log"; MM_SNAP_S=$JOB_S; MM_SNAP_MB=$((JOB_RSS / 1024))
read -r MM_SNAP_RUN_S MM_SNAP_EVENTS < <(run_facts)
[[ "$MM_SNAP_EVENTS" == "{\"r\":$N}" ]] || { echo "project snapshot: events $MM_SNAP_EVENTS, expected {\"r\":$N}" >&2; exit 1; }
log "project snapshot: job $MM_SNAP_S s, run $MM_SNAP_RUN_S s, $MM_SNAP_EVENTS, max RSS $MM_SNAP_MB MB"

log "project streaming: one run that keeps streaming (dagster job execute -j mm_cdc_stream)"
(job mm_cdc_stream "$OUT/mm_cdc_stream.log"; echo "$JOB_S $JOB_RSS" >"$OUT/.stream_job") &
JOB_PID=$!
# Rows until one is visible: the run has started and streams (its topic exists from the first change).
until [[ -s "$OUT/.warm" ]]; do
  sql bench -e "$(stream_sql walks_stream_mm 0 1000 | sed 's/seq_0_to_999/seq_0_to_0/')"
  wait_committed mm.bench.walks_stream_mm 1 3 >"$OUT/.warm" 2>/dev/null || true
  kill -0 "$JOB_PID" 2>/dev/null || { echo "the streaming run ended early (see $OUT/mm_cdc_stream.log)" >&2; exit 1; }
done
sleep 2  # the last warm-up row's transaction is committed too
read -r _ BEFORE < <(wait_committed mm.bench.walks_stream_mm 1)
stream_sql walks_stream_mm 1 "$N" >"$OUT/stream-mm.sql"
log "project streaming: the run streams ($BEFORE offsets in its topic); $N rows in $((N / 1000)) transactions"
t0=$(now); sql bench <"$OUT/stream-mm.sql"; ti=$(now)
read -r t1 _ < <(wait_committed mm.bench.walks_stream_mm "$((BEFORE + N))")
MM_STREAM_S=$(secs "$t0" "$t1"); MM_STREAM_INS_S=$(secs "$t0" "$ti")
wait "$JOB_PID"
read -r MM_STREAM_JOB_S MM_STREAM_RSS <"$OUT/.stream_job"; MM_STREAM_MB=$((MM_STREAM_RSS / 1024))
read -r _ MM_STREAM_EVENTS < <(run_facts)
STREAMED=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get("c", 0))' "$MM_STREAM_EVENTS")
WARM=$(($(sql -N bench -e "SELECT COUNT(*) FROM walks_stream_mm") - N))
((STREAMED > N && STREAMED <= N + WARM)) \
  || { echo "project streaming: events $MM_STREAM_EVENTS; expected the $N rows and some of the $WARM warm-up rows" >&2; exit 1; }
log "project streaming: inserts took $MM_STREAM_INS_S s, the last record visible after $MM_STREAM_S s (run $MM_STREAM_JOB_S s, max RSS $MM_STREAM_MB MB)"

# ------------------------------------------------------------------ the table
PSNAP=$(rate "$N" "$PEER_SNAP_S"); PSTREAM=$(rate "$N" "$PEER_STREAM_S")
MSNAP=$(rate "$N" "$MM_SNAP_S"); MSNAP_RUN=$(rate "$N" "$MM_SNAP_RUN_S"); MSTREAM=$(rate "$N" "$MM_STREAM_S")
MM_MB=$((MM_SNAP_MB > MM_STREAM_MB ? MM_SNAP_MB : MM_STREAM_MB))
{
  echo "CDC side by side, N=$N rows of ~200 bytes ($(date -u +%FT%TZ); $(nproc) cores; MariaDB $(sql -N -e 'SELECT VERSION()'); load average at the start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| figure | Debezium 3.5 on Kafka Connect, rows/s | this project, rows/s | project / Debezium |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| snapshot: Debezium POST -> N records in the topic (${PEER_SNAP_S} s) vs \`dagster job execute\` of the CDC source job (${MM_SNAP_S} s) | $PSNAP | $MSNAP | $(ratio "$PSNAP" "$MSNAP") |"
  echo "| snapshot, the project's run alone (RUN_START to the end, ${MM_SNAP_RUN_S} s) | $PSNAP | $MSNAP_RUN | $(ratio "$PSNAP" "$MSNAP_RUN") |"
  echo "| streaming: N rows in 1,000-row transactions, first insert -> last record visible (Debezium ${PEER_STREAM_S} s, inserts ${PEER_STREAM_INS_S} s; project ${MM_STREAM_S} s, inserts ${MM_STREAM_INS_S} s) | $PSTREAM | $MSTREAM | $(ratio "$PSTREAM" "$MSTREAM") |"
  echo
  echo "| peak RSS, MB | Debezium: Connect JVM (VmHWM) | this project: \`dagster job execute\` (snapshot / streaming run) | project / Debezium |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| the source phases | $PEER_HWM_MB | $MM_SNAP_MB / $MM_STREAM_MB | $(ratio "$PEER_HWM_MB" "$MM_MB") |"
  echo
  echo "whole run $(secs "$T_START" "$(now)") s; details in $OUT (progress.log, job logs, connector bodies)"
} | tee "$OUT/results.md"
"$CTL" down >>"$OUT/progress.log"
if ((MARKDOWN)); then
  (cd "$PROJECT" && "$PY" - "$OUT/results.md" "$N" <<'EOF'
import datetime as dt, sys
from pathlib import Path
from bench.report import PERFORMANCE_PAGE, PUBLISHED_HEADING, commit, machine
results, n = Path(sys.argv[1]).read_text(encoding="utf-8"), sys.argv[2]
stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
page = PERFORMANCE_PAGE.read_text(encoding="utf-8")
assert PUBLISHED_HEADING in page
section = f"\n### CDC side by side (bench/cdc_sidebyside.sh): {stamp}, commit {commit()}, {machine()}\n\n"
section += f"`bash bench/cdc_sidebyside.sh --markdown {n}`\n\n{results}"
PERFORMANCE_PAGE.write_text(page.rstrip() + "\n" + section, encoding="utf-8")
print(f"appended to {PERFORMANCE_PAGE}", file=sys.stderr)
EOF
  )
fi
