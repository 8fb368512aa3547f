"""The words of the document that a run cannot measure: what each scenario means, and for every
target the profile findings and what it would take (kept here, next to the code that measures,
so the generated document and the harness never disagree)."""

from __future__ import annotations

PREAMBLE = """
`make bench` measures churnwatch against bare baselines, each in the same run on the same
machine; `make bench-quick` is a reduced run (under 3 minutes). Every figure that matters is a
ratio against its baseline, plus CPU time per event, which carries over to pods sized in
millicores. The harness lives in `bench/` (`python -m bench --help`).
"""

FINDINGS: dict[str, str] = {}
