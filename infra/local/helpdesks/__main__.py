"""`python -m infra.local.helpdesks --port 8025`: the local helpdesks on their own."""

from __future__ import annotations

import argparse
import signal
import time

from infra.local.helpdesks import start_helpdesks


def main() -> None:
    parser = argparse.ArgumentParser(description="local helpdesk servers for Deflect writeback")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args()
    handle = start_helpdesks(args.port)
    print(f"local helpdesks on {handle.url} (control API at {handle.url}/_control/)", flush=True)
    # A plain flag, not an Event: a handler that takes a lock can wait forever for the one the interrupted wait holds.
    stop_requested: list[int] = []
    signal.signal(signal.SIGINT, lambda number, _frame: stop_requested.append(number))
    signal.signal(signal.SIGTERM, lambda number, _frame: stop_requested.append(number))
    while not stop_requested:
        time.sleep(0.5)
    handle.stop()


if __name__ == "__main__":
    main()
