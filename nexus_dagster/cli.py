"""The ``nexus`` command: validate specs, run a job through Dagster, open the UI, manage keys.

    nexus validate [job_specs/ ...]     every problem with file:line, field and fix; exit 1 on any
    nexus list [--specs DIR]            the jobs, their sources and targets
    nexus validate --format json        the same as a list of {file, line, field, value, ...}
    nexus validate --connect            also check column names against database tables
    nexus schema [--connections]        the JSON Schema of job spec files (or connections.yaml)
    nexus preview JOB [--rows 20]       a sample through the job's transformations; writes nothing
    nexus test-connection [NAME ...]    health-check named connections; exit 1 on any failure
    nexus run JOB [--specs DIR]         run one job in-process through Dagster and print a summary
    nexus ui [--port N]                 `dagster dev` on this project
    nexus keygen                        print a new master encryption key
    nexus encrypt                       read a value on stdin, print its enc: token
    nexus rotate-keys [job_specs/ ...]  re-encrypt every enc: value with the first master key
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from nexus_dagster import secrets
from nexus_dagster.errors import NexusError, SpecError
from nexus_dagster.project import SPECS_ENV, ensure_dagster_home, specs_dir


def _validate(args: argparse.Namespace) -> int:
    from nexus_dagster.run.source_schemas import column_check, connect_allowed
    from nexus_dagster.spec.loader import collect

    paths = args.paths or [specs_dir()]
    project, problems = collect(paths, values=True)
    unknown_columns, schema_notes = column_check(project, connect=connect_allowed(args.connect))
    problems += unknown_columns
    problems.sort(key=lambda p: (p.file or "", p.line or 0))
    if args.format == "json":
        print(json.dumps([p.as_dict() for p in problems], indent=2))
        return 1 if problems else 0
    for problem in problems:
        print(f"error: {problem}")
    for note in schema_notes:
        print(f"warning: {note}")
    missing = set()
    for spec in project.jobs:
        for endpoint in [*spec.job.sources, *spec.job.targets]:
            missing |= secrets.env_references(endpoint.connection_params)
    for connection in project.connections.values():
        missing |= secrets.env_references(connection.params)
    for name in sorted(n for n in missing if n not in os.environ):
        print(f"warning: environment variable {name} is not set here (needed at run time)")
    jobs = len(project.jobs)
    if problems:
        print(f"{len(problems)} problem(s) in {jobs} job(s) checked")
        return 1
    print(f"ok: {jobs} job(s), {len(project.connections)} connection(s)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from nexus_dagster.spec.loader import load_project

    project = load_project(args.specs)
    for spec in project.jobs:
        job = spec.job
        sources = ", ".join(s.name for s in job.sources)
        targets = ", ".join(f"{t.name} ({t.write_mode.value})" for t in job.targets)
        schedule = f"  schedule: {job.schedule}" if job.schedule else ""
        print(f"{job.key}: {sources} -> {targets}{schedule}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from nexus_dagster.dagster.execution import execute_job
    from nexus_dagster.spec.loader import load_project

    project = load_project(args.specs)
    spec = project.job(args.job)
    ensure_dagster_home(Path(args.specs).resolve().parent)
    started = time.perf_counter()
    report = execute_job(project, spec.job.key, log_level=args.log_level)
    elapsed = time.perf_counter() - started
    print()
    print(f"job {spec.job.key}: {'SUCCESS' if report.status == 'success' else 'FAILURE'} "
          f"in {elapsed:.2f} s (run {report.run_id})")
    for key, meta in report.materializations:
        if "nexus/rows_loaded" in meta:
            print(f"  {key}: {meta['nexus/rows_extracted']} extracted, "
                  f"{meta['nexus/rows_transformed']} transformed, "
                  f"{meta['nexus/rows_loaded']} loaded ({meta['nexus/write_mode']}) "
                  f"-> {meta['nexus/location']}")
    for key, meta in report.observations:
        if "nexus/cursor" in meta:
            print(f"  {key}: cursor now {meta['nexus/cursor'].get('value')}")
    if report.status != "success":
        for error in report.errors:
            print(f"  error: {error}")
        return 1
    print(f"  run history: {os.environ['DAGSTER_HOME']}; open the UI with `nexus ui` "
          "(or `dagster dev -w workspace.yaml`) and look at group "
          f"{spec.job.key}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    root = Path.cwd()
    ensure_dagster_home(root)
    # this interpreter's own Dagster (and `dagster dev` starts the webserver and daemon with
    # it too): works from an unactivated venv, whatever PATH holds
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml"),
               "-h", args.host, "-p", str(args.port)]
    print("starting:", " ".join(command), flush=True)
    os.execv(command[0], command)
    return 0  # pragma: no cover


def _schema(args: argparse.Namespace) -> int:
    from nexus_dagster.spec.json_schema import connections_schema, job_schema

    schema = connections_schema() if args.connections else job_schema()
    text = json.dumps(schema, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _preview(args: argparse.Namespace) -> int:
    from nexus_dagster.preview import preview_job
    from nexus_dagster.spec.loader import load_project

    if args.rows < 1:
        print("error: --rows must be at least 1", file=sys.stderr)
        return 2
    print(preview_job(load_project(args.specs), args.job, rows=args.rows).render())
    return 0


def _test_connection(args: argparse.Namespace) -> int:
    from nexus_dagster.connection_check import check_connections
    from nexus_dagster.spec.loader import collect

    project, _ = collect([args.specs])  # a broken job spec does not stop the checks
    if not project.connections and not args.names:
        print(f"no named connections in {args.specs}/connections.yaml")
        return 0
    failed = 0
    for check in check_connections(project, args.names):
        print(check, flush=True)
        failed += not check.ok
    return 1 if failed else 0


def _keygen(args: argparse.Namespace) -> int:
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())
    return 0


def _encrypt(args: argparse.Namespace) -> int:
    value = sys.stdin.readline().rstrip("\n")
    if not value:
        print("nothing on stdin: pipe the value in, e.g. `printf %s \"$PW\" | nexus encrypt`",
              file=sys.stderr)
        return 2
    print(secrets.encrypt_value(value))
    return 0


def _rotate_keys(args: argparse.Namespace) -> int:
    from nexus_dagster.keys import rotate_paths

    rotated = rotate_paths(args.paths or [specs_dir()])
    for path, count in rotated.items():
        print(f"{path}: {count} value(s) re-encrypted with the first key")
    print(f"ok: {sum(rotated.values())} value(s) in {len(rotated)} file(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nexus`` command."""
    parser = argparse.ArgumentParser(prog="nexus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    default_specs = os.environ.get(SPECS_ENV, "job_specs")

    validate = sub.add_parser("validate", help="check specs and connections")
    validate.add_argument("paths", nargs="*", help="spec files or folders (default job_specs/)")
    validate.add_argument("--format", choices=["text", "json"], default="text",
                          help="json: a list of {file, line, field, value, message, fix}")
    validate.add_argument("--connect", action="store_true",
                          help="also read the columns of database sources to check the "
                          "columns steps name (local files are always read)")
    validate.set_defaults(func=_validate)

    schema = sub.add_parser("schema", help="print the JSON Schema of job spec files")
    schema.add_argument("--connections", action="store_true",
                        help="the schema of connections.yaml instead")
    schema.add_argument("-o", "--output", help="write it to this file")
    schema.set_defaults(func=_schema)

    listing = sub.add_parser("list", help="list jobs")
    listing.add_argument("--specs", default=default_specs)
    listing.set_defaults(func=_list)

    run = sub.add_parser("run", help="run one job in-process through Dagster")
    run.add_argument("job")
    run.add_argument("--specs", default=default_specs)
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    run.set_defaults(func=_run)

    preview = sub.add_parser(
        "preview", help="run a job's extraction on a sample and its transformations; print "
        "the first rows and the schema per target (writes and records nothing)")
    preview.add_argument("job")
    preview.add_argument("--rows", type=int, default=20, help="sample size (default 20)")
    preview.add_argument("--specs", default=default_specs)
    preview.set_defaults(func=_preview)

    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this project")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=_ui)

    test_connection = sub.add_parser(
        "test-connection", help="health-check named connections (all, or the given ones)")
    test_connection.add_argument("names", nargs="*", help="connection names (default: all)")
    test_connection.add_argument("--specs", default=default_specs)
    test_connection.set_defaults(func=_test_connection)

    sub.add_parser("keygen", help="print a new master key").set_defaults(func=_keygen)
    sub.add_parser("encrypt", help="encrypt a value read from stdin").set_defaults(func=_encrypt)
    rotate = sub.add_parser("rotate-keys", help="re-encrypt every enc: value with the first key")
    rotate.add_argument("paths", nargs="*", help="spec files or folders (default job_specs/)")
    rotate.set_defaults(func=_rotate_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nexus`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except NexusError as exc:
        print(f"error: {secrets.mask(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
