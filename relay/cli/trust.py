"""`relay binding-code create`, `relay audit`, `relay purge` and `relay corrections export`: the
operator's side of SECURITY.md."""

from __future__ import annotations

import argparse
import json
import sys

import redis


def cmd_binding_code(args: argparse.Namespace) -> int:
    from relay.base.runtime import get_runtime
    from relay.school import bindings

    runtime = get_runtime()
    found = runtime.directories.school(args.school)
    if found is None:
        print(f"unknown school {args.school!r} (is its directory published?)", file=sys.stderr)
        return 1
    if found[1].guardian(args.guardian) is None:
        print(f"no guardian {args.guardian!r} in school {args.school!r}", file=sys.stderr)
        return 1
    days = args.days or runtime.settings.binding_code_days
    made = bindings.create_code(runtime, args.school, args.guardian, days, created_by="operator")
    print(json.dumps({"code": made.code, "school_id": made.school_id, "guardian_id": made.guardian_id,
                      "expires_at": made.expires_at}))
    return 0


def _schools(school: str | None) -> list[str]:
    from relay.base.runtime import get_runtime

    return [school] if school else get_runtime().directories.school_ids()


def cmd_audit(args: argparse.Namespace) -> int:
    from relay.base.runtime import get_runtime
    from relay.core import audit

    try:
        audit.since_ms(args.since)
    except ValueError:
        print(f"bad --since {args.since!r}: an ISO date or time, or an age like 24h or 7d", file=sys.stderr)
        return 2
    try:
        for school_id in _schools(args.school):
            for entry in audit.entries(get_runtime().redis, school_id, args.since):
                print(json.dumps(entry, ensure_ascii=False))
    except redis.RedisError as exc:
        print(f"cannot reach Redis: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from relay.base.runtime import get_runtime
    from relay.core import retention

    runtime = get_runtime()
    try:
        for school_id in _schools(args.school):
            done = retention.purge(runtime, school_id, dry_run=args.dry_run)
            print(json.dumps({"school_id": school_id, "purged" if not args.dry_run else "would_purge": done.requests,
                              "older_than_days": runtime.settings.retention_days,
                              "audit_entries": done.audit_entries,
                              "audit_older_than_days": runtime.settings.audit_retention_days,
                              "export": str(done.export) if done.export else None}))
    except redis.RedisError as exc:
        print(f"cannot reach Redis: {type(exc).__name__}", file=sys.stderr)
        return 1
    except OSError as exc:  # the export could not be written: nothing was deleted
        print(f"cannot write the export under {runtime.settings.retention_export_dir}: {exc}; nothing was purged",
              file=sys.stderr)
        return 1
    return 0


def cmd_corrections_export(args: argparse.Namespace) -> int:
    """Staff's re-triage corrections as JSON Lines that `relay eval` and `relay train` read. It holds
    parents' message texts: for operators only, never a shared folder."""
    from relay.base.runtime import get_runtime
    from relay.core import retriage

    try:
        for school_id in _schools(args.school):
            for row in retriage.corrections(get_runtime().redis, school_id):
                print(json.dumps(row, ensure_ascii=False))
    except redis.RedisError as exc:
        print(f"cannot reach Redis: {type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    corrections = sub.add_parser("corrections", help="staff's re-triage corrections (training data)")
    corrections_sub = corrections.add_subparsers(dest="corrections_command", required=True)
    export = corrections_sub.add_parser(
        "export", help="write them as JSON Lines in the format `relay eval` reads (holds message texts)")
    export.add_argument("--school", help="one school (default: every school)")
    export.set_defaults(func=cmd_corrections_export)

    code = sub.add_parser("binding-code", help="one-time codes that bind a parent's WeChat to a guardian")
    code_sub = code.add_subparsers(dest="binding_code_command", required=True)
    create = code_sub.add_parser("create", help="print a new code as one JSON line")
    create.add_argument("--school", required=True)
    create.add_argument("--guardian", required=True, metavar="GUARDIAN_ID")
    create.add_argument("--days", type=int, help="valid this many days (default RELAY_BINDING_CODE_DAYS)")
    create.set_defaults(func=cmd_binding_code)

    audit = sub.add_parser("audit", help="the staff audit log, one JSON line per entry, oldest first")
    audit.add_argument("--school", help="one school (default: every school)")
    audit.add_argument("--since", help="an ISO date or time (UTC unless given), or an age like 24h or 7d")
    audit.set_defaults(func=cmd_audit)

    purge = sub.add_parser("purge", help="export, then delete, requests closed more than RELAY_RETENTION_DAYS ago "
                                         "and audit entries older than RELAY_AUDIT_RETENTION_DAYS")
    purge.add_argument("--school", help="one school (default: every school)")
    purge.add_argument("--dry-run", action="store_true", help="only count them")
    purge.set_defaults(func=cmd_purge)
