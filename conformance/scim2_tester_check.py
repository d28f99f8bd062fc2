#!/usr/bin/env python3
"""Run the scim2-tester conformance checks against a SCIM 2.0 server.

Usually started by ``conformance/run.sh``, which builds and starts scimd and
passes the base URL and the bootstrap key. It can also be pointed at any
running SCIM server:

    SCIM2_TESTER_TOKEN=<key> python conformance/scim2_tester_check.py \\
        --url http://127.0.0.1:8080/scim/v2

Output: one line per check result (status, resource type, check, reason),
then the details (title, reason, data) of every failed check, then, alone on
its line, ``scim2-tester: N passed, M failed, K skipped``.
The exit code is 0 iff no check failed (2 for usage errors).

Written against scim2-tester 0.5.2 / scim2-client 0.13.2 (httpx2 engine),
pinned in conformance/requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import traceback
from importlib import metadata
from typing import Any

# Statuses of scim2_tester.Status, sorted into the three buckets of the summary.
# SUCCESS: a MUST is met; COMPLIANT: a SHOULD is met; ACCEPTABLE: an optional
# (MAY) behaviour is used correctly. DEVIATION: a SHOULD is not met, still
# within the RFC; counted as passed unless --strict. ERROR: a MUST is violated;
# CRITICAL: security risk / fundamental violation. SKIPPED: not executed
# (filtered out by tags, feature not supported by the server, nothing to test).
PASSED_STATUSES = {"SUCCESS", "COMPLIANT", "ACCEPTABLE", "DEVIATION"}
FAILED_STATUSES = {"ERROR", "CRITICAL"}
SKIPPED_STATUSES = {"SKIPPED"}


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or None


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description="Run scim2-tester's check_server against a SCIM 2.0 server."
    )
    parser.add_argument(
        "--url",
        default=env("SCIM2_TESTER_URL"),
        help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2 "
        "(env SCIM2_TESTER_URL)",
    )
    parser.add_argument(
        "--token-file",
        default=env("SCIM2_TESTER_TOKEN_FILE"),
        help="file holding the bearer token alone on its first line "
        "(env SCIM2_TESTER_TOKEN_FILE); env SCIM2_TESTER_TOKEN holds the token "
        "itself. Without either, no Authorization header is sent.",
    )
    parser.add_argument(
        "--include-tags",
        default=env("SCIM2_TESTER_INCLUDE_TAGS"),
        help="comma-separated scim2-tester tags to run exclusively, e.g. "
        "discovery,crud:read (env SCIM2_TESTER_INCLUDE_TAGS)",
    )
    parser.add_argument(
        "--exclude-tags",
        default=env("SCIM2_TESTER_EXCLUDE_TAGS"),
        help="comma-separated scim2-tester tags to skip, e.g. crud:delete,misc "
        "(env SCIM2_TESTER_EXCLUDE_TAGS)",
    )
    parser.add_argument(
        "--resource-types",
        default=env("SCIM2_TESTER_RESOURCE_TYPES"),
        help="comma-separated resource type names to check, e.g. User "
        "(env SCIM2_TESTER_RESOURCE_TYPES; default: every discovered one)",
    )
    parser.add_argument(
        "--expect-resource-types",
        default=env("SCIM2_TESTER_EXPECT_RESOURCE_TYPES", "User,Group"),
        help="comma-separated resource types that must have been checked; a "
        "missing one counts as a failed check (env "
        "SCIM2_TESTER_EXPECT_RESOURCE_TYPES, default User,Group; empty to "
        "disable)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=env("SCIM2_TESTER_STRICT", "") not in ("", "0", "false", "no"),
        help="count DEVIATION (SHOULD not met) results as failed "
        "(env SCIM2_TESTER_STRICT=1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=float(env("SCIM2_TESTER_TIMEOUT", "30")),
        help="HTTP timeout in seconds (env SCIM2_TESTER_TIMEOUT, default 30)",
    )
    parser.add_argument(
        "--max-data",
        type=int,
        default=int(env("SCIM2_TESTER_MAX_DATA", "6000")),
        help="truncate the data printed for a failed check to this many "
        "characters, 0 for no limit (env SCIM2_TESTER_MAX_DATA, default 6000)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=env("SCIM2_TESTER_VERBOSE", "") not in ("", "0", "false", "no"),
        help="also print the data of passed checks (env SCIM2_TESTER_VERBOSE=1)",
    )
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url (or SCIM2_TESTER_URL) is required")
    return args


def read_token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh.read().splitlines() if line.strip()]
        if not lines:
            raise SystemExit(f"error: token file {args.token_file} is empty")
        return lines[0]
    token = os.environ.get("SCIM2_TESTER_TOKEN", "").strip()
    return token or None


# --------------------------------------------------------------------------
# Formatting helpers


def status_name(result: Any) -> str:
    status = getattr(result, "status", None)
    return getattr(status, "name", str(status))


def one_line(text: Any, limit: int = 240) -> str:
    if text is None:
        return ""
    flat = re.sub(r"\s+", " ", str(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _jsonable(obj: Any) -> Any:
    """json.dumps default hook: pydantic models, exceptions, responses, sets."""
    if hasattr(obj, "model_dump"):
        for kwargs in ({"mode": "json", "exclude_none": True}, {"mode": "json"}, {}):
            try:
                return obj.model_dump(**kwargs)
            except Exception:  # noqa: BLE001 - scim2-models may need a context
                continue
    if isinstance(obj, BaseException):
        return describe_exception(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "status_code") and hasattr(obj, "text"):
        return {"status_code": obj.status_code, "body": obj.text}
    return repr(obj)


def describe_exception(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for note in getattr(exc, "__notes__", None) or []:
        text += f"\n  note: {note}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        text += f"\n  caused by {type(cause).__name__}: {cause}"
    source = getattr(exc, "source", None)
    if source is not None and hasattr(source, "status_code"):
        text += f"\n  response: HTTP {source.status_code} {getattr(source, 'text', '')}"
    if exc.__traceback__ is not None:
        text += "\n" + "".join(traceback.format_tb(exc.__traceback__))
    return text


def format_data(data: Any, limit: int) -> str:
    if data is None:
        return "None"
    if isinstance(data, BaseException):
        text = describe_exception(data)
    elif isinstance(data, str):
        text = data
    else:
        try:
            text = json.dumps(data, default=_jsonable, indent=2, ensure_ascii=False)
        except Exception:  # noqa: BLE001
            text = repr(data)
    if limit and len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit} more characters)"
    return text


def indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def reason_of(result: Any) -> str | None:
    """The reason, prefixed with the exception type when a check crashed."""
    reason = getattr(result, "reason", None)
    data = getattr(result, "data", None)
    if isinstance(data, BaseException) and type(data).__name__ not in str(reason):
        return f"{type(data).__name__}: {reason}"
    return reason


def label(result: Any) -> str:
    title = getattr(result, "title", None) or "<untitled check>"
    resource_type = getattr(result, "resource_type", None)
    return f"{resource_type}: {title}" if resource_type else title


# --------------------------------------------------------------------------


class Synthetic:
    """A result the driver adds itself (check_server crashed, missing coverage)."""

    def __init__(self, status: str, title: str, reason: str, data: Any = None,
                 resource_type: str | None = None) -> None:
        self.status = type("S", (), {"name": status})()
        self.title = title
        self.reason = reason
        self.data = data
        self.resource_type = resource_type
        self.tags: set[str] = set()


def run_checks(args: argparse.Namespace) -> list[Any]:
    from httpx2 import Client
    from scim2_client.engines.httpx2 import SyncSCIMClient
    from scim2_tester import check_server

    token = read_token(args)
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    # trust_env=False: never route the loopback traffic through an HTTP(S)_PROXY.
    http = Client(
        base_url=args.url,
        headers=headers,
        timeout=args.timeout,
        trust_env=False,
    )
    # No provider is given to the client: check_server itself queries
    # /ServiceProviderConfig, /ResourceTypes and /Schemas (as checks), builds
    # the ScimProvider (models + resource types + config) from what the server
    # publishes and registers it on the client before the CRUD checks.
    scim = SyncSCIMClient(http)

    exclude_tags = set(_csv(args.exclude_tags) or []) or None
    if exclude_tags:
        # scim2-tester 0.5.2 quirk: the discovery checks are tagged "*", and a
        # "*" check matches *any* exclude tag, so excluding anything also skips
        # the discovery that the CRUD checks depend on. Describe the server up
        # front in that case (check_server keeps what the client describes).
        try:
            scim.discover()
        except Exception as exc:  # noqa: BLE001
            print(f"== note: up-front discovery failed ({type(exc).__name__}: "
                  f"{one_line(exc)}); CRUD checks may not run")

    results: list[Any] = []
    try:
        results = list(
            check_server(
                scim,
                raise_exceptions=False,
                include_tags=set(_csv(args.include_tags) or []) or None,
                exclude_tags=exclude_tags,
                resource_types=_csv(args.resource_types),
            )
        )
    except Exception as exc:  # noqa: BLE001 - a crash is a failed check
        results.append(
            Synthetic(
                "ERROR",
                "check_server",
                f"scim2-tester raised {type(exc).__name__}: {exc}",
                data=exc,
            )
        )
    finally:
        http.close()

    # Guard against a vacuous pass: if discovery described no (or fewer)
    # resource types, check_server silently runs no CRUD checks for them.
    expected = _csv(args.expect_resource_types) or []
    selected = _csv(args.resource_types)
    checked = {getattr(r, "resource_type", None) for r in results}
    for name in expected:
        if selected and name not in selected:
            continue
        if name not in checked:
            results.append(
                Synthetic(
                    "ERROR",
                    "resource_type_coverage",
                    f"no check ran for resource type {name!r}: the server's "
                    "/ResourceTypes and /Schemas did not describe it (see the "
                    "discovery checks)",
                    data={
                        "described_resource_types": [
                            getattr(rt, "name", repr(rt))
                            for rt in (scim.provider.resource_types or [])
                        ]
                    },
                    resource_type=name,
                )
            )
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    passed_statuses = set(PASSED_STATUSES)
    failed_statuses = set(FAILED_STATUSES)
    if args.strict:
        passed_statuses.discard("DEVIATION")
        failed_statuses.add("DEVIATION")

    try:
        versions = ", ".join(
            f"{pkg} {metadata.version(pkg)}"
            for pkg in ("scim2-tester", "scim2-client", "scim2-models", "httpx2")
        )
    except metadata.PackageNotFoundError as exc:
        print(f"error: missing package {exc}; install conformance/requirements.txt",
              file=sys.stderr)
        return 2
    print(f"== {versions}")
    print(f"== checking {args.url}")

    try:
        results = run_checks(args)
    except Exception as exc:  # noqa: BLE001 - e.g. import or client setup failure
        results = [Synthetic("ERROR", "driver", f"{type(exc).__name__}: {exc}", exc)]

    passed: list[Any] = []
    failed: list[Any] = []
    skipped: list[Any] = []
    for result in results:
        name = status_name(result)
        if name in failed_statuses:
            failed.append(result)
        elif name in SKIPPED_STATUSES:
            skipped.append(result)
        elif name in passed_statuses:
            passed.append(result)
        else:  # an unknown status is not a pass
            failed.append(result)

    failed_ids = {id(r) for r in failed}
    skipped_ids = {id(r) for r in skipped}
    print("== results")
    for result in results:
        name = status_name(result)
        mark = "FAIL" if id(result) in failed_ids else ("skip" if id(result) in skipped_ids else "ok")
        reason = one_line(reason_of(result))
        line = f"[{mark:4}] {name:<10} {label(result)}"
        print(f"{line} — {reason}" if reason else line)
        if args.verbose and id(result) not in failed_ids and getattr(result, "data", None) is not None:
            print(indent(format_data(result.data, args.max_data)))

    deviations = [r for r in passed if status_name(r) == "DEVIATION"]
    if deviations:
        print(f"== {len(deviations)} SHOULD-level deviation(s) (counted as passed; "
              "SCIM2_TESTER_STRICT=1 fails them)")
        for result in deviations:
            print(f"DEVIATION {label(result)}: {one_line(reason_of(result), 1000)}")

    if failed:
        print(f"== failed checks ({len(failed)})")
        for index, result in enumerate(failed, 1):
            print(f"--- FAILED {index}/{len(failed)}: {label(result)} [{status_name(result)}]")
            print(f"  title:  {getattr(result, 'title', None)}")
            if getattr(result, "resource_type", None):
                print(f"  resource type: {result.resource_type}")
            tags = getattr(result, "tags", None)
            if tags:
                print(f"  tags:   {', '.join(sorted(tags))}")
            print(f"  reason: {reason_of(result)}")
            print("  data:")
            print(indent(format_data(getattr(result, "data", None), args.max_data)))

    sys.stdout.flush()
    print(f"scim2-tester: {len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
