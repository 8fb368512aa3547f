"""churnwatch tooling outside the services: the portfolio simulator, its file formats, the CLI.

- ``churnwatch.simulator``: a seeded, deterministic customer portfolio and its activity, day by
  day, with the ground truth kept apart (``simulate(seed, start=...)``).
- ``churnwatch.stories``: what happens to each account (healthy, expansion, churn stories...).
- ``churnwatch.files``: JSONL events, CSV accounts / people / labels — writers and readers.
"""
