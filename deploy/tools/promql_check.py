"""Parse PromQL expressions: a JSON list of strings on stdin → a JSON list of the errors
(``{"expr", "error"}``; empty when every expression parses). Runs in the deploy tools'
environment, which has ``promql-parser``; tests/deploy/test_monitoring.py calls it."""

from __future__ import annotations

import json
import sys

import promql_parser  # type: ignore[import-not-found]  # only in the deploy tools' environment


def main() -> int:
    errors = []
    for expr in json.load(sys.stdin):
        try:
            promql_parser.parse(expr)
        except Exception as exc:  # the parser raises ValueError; report anything the same way
            errors.append({"expr": expr, "error": f"{type(exc).__name__}: {exc}"})
    json.dump(errors, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
