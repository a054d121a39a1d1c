"""`relay config apply|export|versions|restore`: the directory in Redis from the command line.

`apply` publishes a configuration file as the new version of each school in it (an unchanged
school keeps its version); `export` prints a school's current version as a file that `apply`
reads back to the same content. Every running process uses a new version within a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import redis


def _connection() -> redis.Redis:
    from relay.base.runtime import get_runtime

    return get_runtime().redis


def cmd_apply(args: argparse.Namespace) -> int:
    from relay.base.directory import ConfigError, as_written, load_yaml, publish_school
    from relay.school.configcheck import check_file

    problems, _ = check_file(Path(args.file))
    if problems:
        for problem in problems:
            print(problem)
        print(f"{len(problems)} problem(s) in {args.file}: nothing was published", file=sys.stderr)
        return 1
    directory = load_yaml(args.file)
    try:
        for school in directory.schools:
            done = publish_school(_connection(), school.id, as_written(school), by=args.by,
                                  note=f"config apply {Path(args.file).name}")
            print(json.dumps({"school_id": school.id, "version": done.version, "previous_version": done.previous,
                              "changed": done.changed}))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except redis.RedisError as exc:
        print(f"cannot reach Redis: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from relay.base import keys
    from relay.base.directory import current_version, export_yaml
    from relay.base.store import text

    connection = _connection()
    try:
        school_ids = [args.school] if args.school else sorted(text(s) for s in connection.smembers(keys.SCHOOLS))
        found = [current_version(connection, school_id) for school_id in school_ids]
    except redis.RedisError as exc:
        print(f"cannot reach Redis: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    missing = [school_id for school_id, one in zip(school_ids, found, strict=True) if one is None]
    if missing or not school_ids:
        print(f"no published directory for {', '.join(missing) or 'any school'}", file=sys.stderr)
        return 1
    for school_id, one in zip(school_ids, found, strict=True):
        print(f"# {school_id}: version {one[0] if one else '?'}")
    sys.stdout.write(export_yaml([one[1] for one in found if one]))
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    from relay.base.directory import versions

    for item in versions(_connection(), args.school):
        print(json.dumps(item, ensure_ascii=False))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from relay.base.directory import ConfigError, restore

    try:
        done = restore(_connection(), args.school, args.version, by=args.by)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps({"school_id": args.school, "version": done.version, "restored": args.version,
                      "changed": done.changed}))
    return 0


def add_parsers(config_sub: argparse._SubParsersAction) -> None:
    apply = config_sub.add_parser("apply", help="publish a configuration file as each school's new version")
    apply.add_argument("file")
    apply.add_argument("--by", default="operator", help="who is publishing (shown in the versions list)")
    apply.set_defaults(func=cmd_apply)

    export = config_sub.add_parser("export", help="print the current version as YAML")
    export.add_argument("--school", help="one school (default: every school)")
    export.set_defaults(func=cmd_export)

    listed = config_sub.add_parser("versions", help="a school's kept versions, one JSON line each, newest first")
    listed.add_argument("--school", required=True)
    listed.set_defaults(func=cmd_versions)

    back = config_sub.add_parser("restore", help="publish an earlier version's content as a new version")
    back.add_argument("--school", required=True)
    back.add_argument("version", type=int)
    back.add_argument("--by", default="operator")
    back.set_defaults(func=cmd_restore)
