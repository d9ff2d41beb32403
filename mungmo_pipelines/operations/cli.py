"""``mungmo-connect``: Kafka Connect's REST operations from the command line, without a server running.

Each command calls the same operations as the REST endpoint and prints their JSON (``list``
prints a table unless ``--json``); a refusal prints Kafka Connect's status code and message on
stderr and exits 1. ``serve`` runs the REST endpoint itself (``make connect-api``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mungmo_pipelines.core import settings
from mungmo_pipelines.core.errors import BadRequest, OperationError
from mungmo_pipelines.core.operations.service import Connect
from mungmo_pipelines.core.operations.state import TargetState
from mungmo_pipelines.core.operations.validate import plugins


def _read_json(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BadRequest(f"{source} is not valid JSON: {err}") from None


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _table(statuses: dict[str, Any]) -> str:
    rows = [("CONNECTOR", "TYPE", "STATE", "TASK", "LAST RUN", "LAG")]
    for name, entry in statuses.items():
        status = entry["status"]
        extra = status.get("mungmo", {})
        task = status["tasks"][0]["state"] if status["tasks"] else "-"
        last = extra.get("last_run")
        run = f"{last['status']} {last['created_at']} {last['run_id'][:8]}" if last else "-"
        rows.append((name, status["type"], status["connector"]["state"], task, run, _lag(extra.get("lag"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    failed = [
        f"{name}: {entry['status']['connector']['trace']}"
        for name, entry in statuses.items()
        if entry["status"]["connector"]["state"] == "FAILED"
    ]
    return "\n".join(lines + (["", *failed] if failed else []))


def _lag(lag: dict[str, Any] | None) -> str:
    if not lag:
        return "-"
    if "error" in lag:
        return "unknown (" + lag["error"].split(":")[0] + ")"
    if "records" in lag:
        return f"{lag['records']} records"
    return f"{lag['tables_behind']} table(s) behind"


def _delete_keeps_offsets(args: argparse.Namespace) -> bool:
    if args.keep_offsets or args.delete_offsets:
        return bool(args.keep_offsets)
    if not sys.stdin.isatty():
        raise BadRequest("say --keep-offsets or --delete-offsets (no terminal to ask on)")
    answer = input(f"Keep the offsets of {args.name} (a connector added again later resumes from them)? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _config_of(body: Any) -> dict[str, Any]:
    """A flat config map from a body file: ``{"name", "config"}`` or the map itself."""
    if isinstance(body, dict) and isinstance(body.get("config"), dict):
        return {**body["config"], **({"name": body["name"]} if body.get("name") else {})}
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    return body


def run(args: argparse.Namespace, connect: Connect) -> None:
    command = args.command
    if command == "list":
        statuses = connect.connectors(["status"])
        print(json.dumps(statuses, indent=2) if args.json else _table(statuses))
    elif command == "status":
        _print(connect.status(args.name))
    elif command == "config":
        _print(connect.config(args.name))
    elif command == "topics":
        _print(connect.topics(args.name))
    elif command in ("pause", "resume", "stop"):
        state = {"pause": TargetState.PAUSED, "resume": TargetState.RUNNING, "stop": TargetState.STOPPED}[command]
        print(connect.set_state(args.name, state).describe(args.name))
    elif command == "restart":
        status, launched = connect.restart(args.name, args.include_tasks, args.only_failed)
        print(
            launched
            or f"nothing launched: {args.name} is {status['connector']['state']}"
            + (f", task {status['tasks'][0]['state']}" if status["tasks"] else "")
        )
    elif command == "offsets":
        actions: dict[str, Callable[[], Any]] = {
            "get": lambda: connect.offsets(args.name),
            "reset": lambda: connect.reset_offsets(args.name),
            "set": lambda: connect.alter_offsets(args.name, _read_json(args.file)),
        }
        _print(actions[args.action]())
    elif command == "validate":
        config = _config_of(_read_json(args.file))
        infos = connect.validate(str(config.get("connector.class", "")), config)
        errors = {c["value"]["name"]: c["value"]["errors"] for c in infos["configs"] if c["value"]["errors"]}
        _print(infos if args.json else {"name": infos["name"], "error_count": infos["error_count"], "errors": errors})
        if infos["error_count"]:
            sys.exit(1)
    elif command == "add":
        body = _read_json(args.file)
        info, reload = connect.create(body)
        _print(info)
        print(reload, file=sys.stderr)
    elif command == "update":
        info, created, reload = connect.put_config(args.name, _config_of(_read_json(args.file)))
        _print(info)
        print(("created; " if created else "updated; ") + reload, file=sys.stderr)
    elif command == "delete":
        removed, reload = connect.delete(args.name, _delete_keeps_offsets(args))
        print(f"deleted {args.name}: removed {', '.join(removed)}; {reload}")
    elif command == "plugins":
        _print(plugins())


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mungmo-connect", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every connector: state, task, last run, lag")
    listing.add_argument("--json", action="store_true", help="GET /connectors?expand=status as JSON")
    for name, text in [
        ("status", "GET /connectors/{name}/status"),
        ("config", "GET /connectors/{name}/config"),
        ("topics", "GET /connectors/{name}/topics"),
        ("pause", "PUT /connectors/{name}/pause: sensors skip, runs end skipped"),
        ("resume", "PUT /connectors/{name}/resume"),
        ("stop", "PUT /connectors/{name}/stop: paused, and its offsets may be changed"),
    ]:
        commands.add_parser(name, help=text).add_argument("name")
    restart = commands.add_parser("restart", help="POST /connectors/{name}/restart: run its job now")
    restart.add_argument("name")
    restart.add_argument("--include-tasks", action="store_true")
    restart.add_argument("--only-failed", action="store_true", help="only when its last run failed")
    offsets = commands.add_parser("offsets", help="GET / DELETE (reset) / PATCH (set) /connectors/{name}/offsets")
    offsets.add_argument("action", choices=["get", "reset", "set"])
    offsets.add_argument("name")
    offsets.add_argument("file", nargs="?", default="-", help='for set: {"offsets": [...]} (a file, or - for stdin)')
    validate = commands.add_parser("validate", help="PUT /connector-plugins/{class}/config/validate")
    validate.add_argument("file", help="a connector body or config map (- for stdin)")
    validate.add_argument("--json", action="store_true", help="the whole ConfigInfos")
    add = commands.add_parser("add", help="POST /connectors: validate, write to the connectors directory, reload")
    add.add_argument("file", help='{"name": ..., "config": {...}} (- for stdin)')
    update = commands.add_parser("update", help="PUT /connectors/{name}/config")
    update.add_argument("name")
    update.add_argument("file", help="a config map or connector body (- for stdin)")
    delete = commands.add_parser("delete", help="DELETE /connectors/{name}; asks whether to keep its offsets")
    delete.add_argument("name")
    keep = delete.add_mutually_exclusive_group()
    keep.add_argument("--keep-offsets", action="store_true")
    keep.add_argument("--delete-offsets", action="store_true")
    commands.add_parser("plugins", help="GET /connector-plugins")
    serve = commands.add_parser("serve", help="the Kafka Connect-compatible REST endpoint")
    serve.add_argument("--host", default=settings.CONNECT_API_HOST.get())
    serve.add_argument("--port", type=int, default=int(settings.CONNECT_API_PORT.get() or 8083))
    return top


def serve(host: str, port: int) -> None:
    import uvicorn

    from mungmo_pipelines.operations.orchestrator import connect_from_environment
    from mungmo_pipelines.operations.rest import create_app

    user, password = settings.CONNECT_API_USER.get(), settings.CONNECT_API_PASSWORD.get()
    if bool(user) != bool(password):
        raise SystemExit("set both MUNGMO_CONNECT_API_USER and MUNGMO_CONNECT_API_PASSWORD, or neither")
    connect = connect_from_environment("rest")
    connect.worker_id = f"{host}:{port}"
    credentials = (user, password) if user and password else None
    try:
        uvicorn.run(create_app(connect, credentials), host=host, port=port, log_level="info")
    finally:
        connect.close()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port)
        return
    from mungmo_pipelines.operations.orchestrator import connect_from_environment

    connect = connect_from_environment("cli")
    try:
        run(args, connect)
    except OperationError as err:
        print(f"error {err.status}: {err.message}", file=sys.stderr)
        sys.exit(1)
    finally:
        connect.close()


if __name__ == "__main__":
    main()
