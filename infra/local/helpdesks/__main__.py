"""`python -m infra.local.helpdesks --port 8025`: the local helpdesks on their own."""

from __future__ import annotations

import argparse
import signal
import threading

from infra.local.helpdesks import start_helpdesks


def main() -> None:
    parser = argparse.ArgumentParser(description="local helpdesk servers for Deflect writeback")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args()
    handle = start_helpdesks(args.port)
    print(f"local helpdesks on {handle.url} (control API at {handle.url}/_control/)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    handle.stop()


if __name__ == "__main__":
    main()
