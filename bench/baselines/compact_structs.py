"""Baseline of S4: the memory of one compact struct per account, held in a dict by account id.

    python -m bench.baselines.compact_structs --accounts 100000

What an in-memory scorer would need at the least to know each account: its id, current score
and band, when it was scored, and a few rolling counters (a ``msgspec.Struct`` with
``gc=False``, stored as array-like). Prints one JSON line: the resident memory the structs
added (VmRSS after − before), in bytes.
"""

from __future__ import annotations

import argparse
import json
import sys

import msgspec

from bench.procstat import rss_bytes

BANDS = ("green", "yellow", "red")


class AccountState(msgspec.Struct, gc=False, array_like=True):
    account_id: str
    score: float
    band: str
    as_of: int  # epoch seconds
    last_usage_day: int
    usage_7d: int
    users_7d: int
    open_tickets: int


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.compact_structs")
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args(argv)
    import os

    pid = os.getpid()
    before = rss_bytes(pid)
    states: dict[str, AccountState] = {}
    for i in range(1, args.accounts + 1):
        account = f"acct-{i:07d}"
        states[account] = AccountState(
            account,
            50.0 + i % 50,
            BANDS[i % 3],
            1_800_000_000 + i,
            740_000 + i % 30,
            i % 500,
            i % 40,
            i % 4,
        )
    after = rss_bytes(pid)
    print(json.dumps({"accounts": len(states), "bytes": after - before}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
