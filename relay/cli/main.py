"""The `relay` command (see DESIGN.md for the public contract of each subcommand)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from relay.cli.paths import config_path
from routing.labels import Urgency

if TYPE_CHECKING:
    from routing.calendar import SchoolCalendar
    from routing.directory import School

def cmd_classify(_: argparse.Namespace) -> int:
    from routing.classifier import classify

    out = sys.stdout
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            text = item["text"]
            if not isinstance(text, str):
                raise TypeError("text must be a string")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            print(f"line {number}: {exc}", file=sys.stderr)
            return 2
        hint = item.get("category_hint")
        result = classify(text, hint if isinstance(hint, str) else None)
        out.write(json.dumps({"id": item.get("id"), "urgency": result.urgency.value,
                              "category": result.category.value, "reasons": list(result.reasons)},
                             ensure_ascii=False) + "\n")
    out.flush()
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from relay.base import tokens
    from relay.base.settings import NoSigningKey, dev_key_path, get_settings

    settings = get_settings()
    try:
        # Never a new key here: the server would not know it, and the token would get 401.
        keys = settings.signing_keys(create=False)
    except NoSigningKey as exc:
        print(exc, file=sys.stderr)
        return 1
    if not settings.secret_key:
        print(f"signed with the dev key {dev_key_path()} (RELAY_SECRET_KEY is not set)", file=sys.stderr)
    school = args.school
    if school is None:
        school = _find_school(args.kind, args.subject)
    ttl = args.ttl or settings.token_ttl_seconds
    print(tokens.caller_token(args.kind, args.subject, school, keys, ttl))
    return 0


def _find_school(kind: str, subject: str) -> str | None:
    """The school of a guardian or staff id in the configuration file, when it can be read; else none."""
    from relay.base.directory import ConfigError, load_yaml

    try:
        directory = load_yaml(config_path(None))
    except ConfigError:
        return None
    for school in directory.schools:
        if (kind == "parent" and school.guardian(subject)) or (kind == "staff" and school.staff_member(subject)):
            return school.id
    return None


def cmd_config_check(args: argparse.Namespace) -> int:
    from relay.school.configcheck import check_file

    problems, summary = check_file(Path(args.file))
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.file}", file=sys.stderr)
        return 1
    print(summary)
    return 0


def _school_for(args: argparse.Namespace) -> School:
    from relay.base.directory import load_yaml

    directory = load_yaml(config_path(getattr(args, "config", None)))
    if args.school:
        school = directory.school(args.school)
        if school is None:
            raise SystemExit(f"unknown school {args.school!r}")
        return school
    return directory.schools[0]


def _warn_estimated(calendar: SchoolCalendar) -> None:
    """Say on stderr why some days or due times are marked "estimated": true."""
    if calendar.estimated_years:
        listed = ", ".join(str(y) for y in sorted(calendar.estimated_years))
        print(f"warning: no official holidays are known for {listed} (chinese-calendar does not know the year and "
              "the configuration's calendar: has no date in it): planned with weekdays and weekends, each such "
              'day or due time marked "estimated": true. Enter the holidays and make-up workdays under '
              "calendar: in the YAML or on /admin/calendar.", file=sys.stderr)
    if calendar.past_terms_end is not None:
        print(f"warning: no term is configured after {calendar.past_terms_end}: later days are planned as term days, "
              'marked "estimated": true. Add the next term under terms: in the YAML.', file=sys.stderr)


def cmd_calendar(args: argparse.Namespace) -> int:
    from routing.calendar import CalendarUnknown, SchoolCalendar, calendar_days

    school = _school_for(args)
    calendar = SchoolCalendar(school)
    start = dt.date.fromisoformat(args.from_date) if args.from_date else dt.datetime.now(school.zone).date()
    try:
        days = calendar_days(school, start, args.days, calendar)
    except (CalendarUnknown, ValueError) as exc:
        print(f"calendar: {exc}", file=sys.stderr)
        return 1
    for day in days:
        print(json.dumps(day, ensure_ascii=False))
    _warn_estimated(calendar)
    return 0


def cmd_eta(args: argparse.Namespace) -> int:
    from routing.calendar import CalendarUnknown, SchoolCalendar, eta

    school = _school_for(args)
    calendar = SchoolCalendar(school)
    try:
        at = dt.datetime.fromisoformat(args.at)
        print(json.dumps(eta(school, args.urgency, at, calendar=calendar), ensure_ascii=False))
    except (CalendarUnknown, ValueError) as exc:
        print(f"cannot compute: {exc}", file=sys.stderr)
        return 1
    _warn_estimated(calendar)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from relay.cli.triage_eval import main as evaluate

    return evaluate(args.rest)


def cmd_train(args: argparse.Namespace) -> int:
    from relay.cli.training import main as train

    return train(args.rest)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from relay.base.runtime import get_runtime, set_runtime
    from relay.base.settings import get_settings
    from relay.base.shards import ShardError, Shards
    from relay.cli.preflight import require_master
    from relay.cli.serving import LOOP, NoDelayHttpTools
    from relay.school.startup import publish_configured

    if not require_master(get_settings(), "serve"):
        return 1
    try:
        shards = Shards.configured(get_settings(), get_runtime)
    except ShardError as exc:
        print(f"relay serve: {exc}", file=sys.stderr)
        return 1
    for name, runtime in shards.runtimes.items():
        publish_configured(runtime, only=shards.schools_of(name))  # each school's directory on its own shard
    set_runtime(shards.default)  # never a connection to REDIS_URL beside the shards
    if not get_runtime().settings.metrics_token:
        from relay.base.log import configure, log

        configure(get_runtime().settings.log_level)
        log.warning("metrics_unprotected", hint="GET /metrics answers anyone who reaches this port: set "
                                                "RELAY_METRICS_TOKEN, or keep the port off the public network")
    if args.workers <= 1:
        from relay.app.factory import create_app

        uvicorn.run(create_app(shards=shards), host=args.host, port=args.port, log_level="warning", access_log=False,
                    http=NoDelayHttpTools, loop=LOOP)
        return 0
    # Several processes on one port (uvicorn's workers, each building its own app). Their counters go to
    # one multiprocess directory, so that a scrape answered by any of them counts all (relay/metrics.py).
    own_directory = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_directory = tempfile.mkdtemp(prefix="relay-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_directory
    try:
        uvicorn.run("relay.app.factory:create_app", factory=True, workers=args.workers, host=args.host, port=args.port,
                    log_level="warning", access_log=False, http=NoDelayHttpTools, loop=LOOP)
    finally:
        if own_directory:
            shutil.rmtree(own_directory, ignore_errors=True)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from relay.base.runtime import get_runtime, set_runtime
    from relay.base.settings import get_settings
    from relay.base.shards import ShardError, for_worker, shard_runtime
    from relay.cli.preflight import require_master
    from relay.cli.worker import run_worker
    from relay.school.startup import publish_configured

    try:
        shard = for_worker(get_settings(), args.shard)
        if shard is not None:
            # Every job and timer of this process reads get_runtime(): this shard's Redis and queues, no other.
            set_runtime(shard_runtime(get_settings(), shard))
    except ShardError as exc:
        print(f"relay worker: {exc}", file=sys.stderr)
        return 2
    if not require_master(get_runtime().settings, "worker"):
        return 1
    publish_configured(get_runtime(), only=set(shard.schools) if shard else None)
    run_worker(with_scheduler=not args.no_scheduler, burst=args.burst)
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from relay.cli.dev import run_dev

    return run_dev(args.config, args.host, args.port, args.workers)


def cmd_deadletters(args: argparse.Namespace) -> int:
    import redis

    from relay.base.runtime import get_runtime
    from relay.core import deadletters

    needs_one = args.action == "show" or (args.action in ("redrive", "drop") and not args.all)
    if (needs_one and not args.event_id) or (args.event_id and args.all):
        print(f"deadletters {args.action}: give one EVENT_ID{'' if args.action == 'show' else ' or --all'}",
              file=sys.stderr)
        return 2
    runtime = get_runtime()
    r = runtime.redis
    done = 0
    try:
        for school_id in deadletters.schools(r, args.school):
            if args.action == "list":
                for letter in deadletters.letters(r, school_id):
                    print(json.dumps(letter.summary(), ensure_ascii=False))
                continue
            if args.action == "show":
                shown = deadletters.show(r, school_id, args.event_id)
                if shown is not None:
                    print(json.dumps(shown, ensure_ascii=False, indent=2))
                    done += 1
                continue
            event_ids = [args.event_id] if args.event_id else [d.event_id for d in deadletters.letters(r, school_id)]
            for event_id in event_ids:
                if args.action == "redrive":
                    taken = deadletters.redrive(runtime, school_id, event_id)
                else:
                    taken = deadletters.drop(r, school_id, event_id)
                if taken is not None:
                    result = "redriven" if args.action == "redrive" else "dropped"
                    print(json.dumps({"school_id": school_id, "event_id": event_id, "result": result}))
                    done += 1
    except redis.RedisError as exc:
        print(f"cannot reach Redis: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.event_id and not done:
        print(f"no dead letter {args.event_id}" + (f" in school {args.school}" if args.school else ""), file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """A school week replayed through the real system on a simulated clock (relay/cli/replay/)."""
    from relay.cli.replay import main as simulate

    start = dt.date.fromisoformat(args.start)
    return simulate(config_path(args.config), args.school, start, args.days, args.seed, args.classes,
                    Path(args.out), args.workers, tuple(Path(m) for m in args.messages))


def _add_simulate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = sub.add_parser("simulate", help="replay a realistic school week through the real system")
    simulate.add_argument("--config")
    simulate.add_argument("--school")
    # 2026-09-20 is a make-up Sunday (调休) for National Day, and 09-25/26 are the Mid-autumn holiday.
    simulate.add_argument("--start", default="2026-09-20", help="first day, YYYY-MM-DD")
    simulate.add_argument("--days", type=int, default=7)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--classes", type=int, help="only the first N classes write (default: all)")
    simulate.add_argument("--workers", type=int, default=2)
    simulate.add_argument("--out", default="docs/replay")
    simulate.add_argument("--messages", nargs="+", default=[], metavar="FILE",
                          help="labelled JSON Lines (the relay eval format) replayed instead of the generated "
                               "messages, at the generated hours; the summary adds the labelled emergencies that waited")
    simulate.set_defaults(func=cmd_simulate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description="Relay: parents' requests to the right person, on time.")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="the whole system on one machine")
    dev.add_argument("--config")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--workers", type=int, default=2)
    dev.set_defaults(func=cmd_dev)

    serve = sub.add_parser("serve", help="the API alone")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1,
                       help="API processes on this port (metrics are added up across them)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="a worker with the timer scheduler")
    worker.add_argument("--shard", metavar="NAME", help="the shard of RELAY_CONFIG's shards: map this worker serves "
                                                        "(required when the map exists)")
    worker.add_argument("--no-scheduler", action="store_true")
    worker.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    worker.set_defaults(func=cmd_worker)

    sub.add_parser(
        "classify", help="JSON Lines in, classifications out",
        description='Reads JSON Lines on stdin, one request a line: {"id": ..., "text": ..., "category_hint"?: ...}. '
                    'Writes one JSON line per input to stdout, in input order: {"id", "urgency", "category", '
                    '"reasons": [...]}. Needs no Redis. A line it cannot read stops it with exit code 2, naming the line.',
    ).set_defaults(func=cmd_classify)

    token = sub.add_parser("token", help="print a signed bearer token")
    token.add_argument("kind", choices=["parent", "staff"])
    token.add_argument("subject", help="GUARDIAN_ID or STAFF_ID")
    token.add_argument("--school")
    token.add_argument("--ttl", type=int, help="seconds")
    token.set_defaults(func=cmd_token)

    config = sub.add_parser("config", help="school configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a configuration file")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    from relay.cli.config import add_parsers as add_config_parsers

    add_config_parsers(config_sub)  # apply, export, versions, restore

    calendar = sub.add_parser("calendar", help="school days, one JSON line each")
    calendar.add_argument("--school")
    calendar.add_argument("--config")
    calendar.add_argument("--from", dest="from_date")
    calendar.add_argument("--days", type=int, default=14)
    calendar.set_defaults(func=cmd_calendar)

    eta = sub.add_parser("eta", help="due times and the parent's words for a request")
    eta.add_argument("--urgency", required=True, choices=[u.value for u in Urgency])
    eta.add_argument("--at", required=True)
    eta.add_argument("--school")
    eta.add_argument("--config")
    eta.set_defaults(func=cmd_eta)

    evaluate = sub.add_parser("eval", help="score the classifier on a labelled JSON Lines file")
    evaluate.add_argument("rest", nargs=argparse.REMAINDER)
    evaluate.set_defaults(func=cmd_eval)

    train = sub.add_parser("train", help="fit the learned triage model on labelled JSON Lines")
    train.add_argument("rest", nargs=argparse.REMAINDER)
    train.set_defaults(func=cmd_train)

    dead = sub.add_parser("deadletters", help="notifications that exhausted every contact and retry")
    dead_sub = dead.add_subparsers(dest="action", required=True)
    for action, what in (("list", "one JSON line per dead letter"), ("show", "one dead letter and its history"),
                         ("redrive", "send again: same event id, first contact"), ("drop", "forget")):
        one = dead_sub.add_parser(action, help=what)
        one.add_argument("--school", help="one school (default: every school)")
        if action != "list":
            one.add_argument("event_id", nargs="?", metavar="EVENT_ID")
        if action in ("redrive", "drop"):
            one.add_argument("--all", action="store_true", help=f"{action} every dead letter")
        one.set_defaults(func=cmd_deadletters, event_id=None, all=False)

    from relay.cli.trust import add_parsers

    add_parsers(sub)  # binding-code, audit, purge
    _add_simulate(sub)
    return parser


# These own their options: argparse's REMAINDER will not take a first argument that starts with "-".
_PASS_THROUGH = {"eval": cmd_eval, "train": cmd_train}


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given and given[0] in _PASS_THROUGH:
        return _PASS_THROUGH[given[0]](argparse.Namespace(rest=given[1:]))
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError

    try:
        if args.command in ("dev", "serve", "worker"):
            from relay.base.log import configure
            from relay.base.settings import get_settings

            configure(get_settings().log_level)
        result: int = args.func(args)
    except ValidationError as exc:  # a setting that cannot be used: say which, without a traceback
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            print(f"relay {args.command}: setting {where}: {error['msg']}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
