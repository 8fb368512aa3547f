"""python -m devstack up | down | status"""

from __future__ import annotations

import sys

from devstack.stack import Stack


def main(argv: list[str]) -> int:
    commands = ("up", "down", "status")
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m devstack {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    stack = Stack()
    if argv[0] == "up":
        try:
            stack.up()
        except Exception as exc:
            print(f"devstack: {exc}", file=sys.stderr)
            print("devstack: stopping what was started", file=sys.stderr)
            stack.down()
            return 1
        return 0
    if argv[0] == "down":
        stack.down()
        return 0
    return stack.status()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
