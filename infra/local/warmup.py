"""Warm-up of the local stack: the starter intent head, trained once per data dir, before a conversation needs it.

Triage classifies with the starter taxonomy until a tenant trains its own. The head is trained on first use and
cached under MODEL_DATA_DIR/starter/ (`<data dir>/models/starter/`), which held the first conversation after a
fresh `make run` in `processing` for 10-25 s (minutes on a busy machine) with nothing saying why. The stack now
starts that work itself, in the background, once the start-up hooks are done: it reports ready as soon as it
serves requests, the banner says on the first run that the head is being trained, `GET /v1/health` shows `warmup`
until it is done, and a line is printed when it is. A conversation sent meanwhile waits for that training (one
lock), never starts another. Started before the hooks instead, it delayed ready by ~3 s and answered no sooner.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

STARTER = "starter_intent_head"


class StarterWarmup:
    """Loads (or on a first run trains) the starter head of the container's intent classifier in a thread."""

    def __init__(self, container: Any, *, tenant_id: str = "demo") -> None:
        self._container = container
        self._tenant_id = tenant_id
        self.cache_dir = Path(container.settings.model_data_dir) / "starter"
        # A first run: no head cached yet, so this start trains one (later starts load it in milliseconds).
        self.first_run = not any(self.cache_dir.glob("*.json"))
        self.state = "pending"
        self.seconds: float | None = None
        self.error: str | None = None
        self.trained = False
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="deflect-warmup", daemon=True)

    def start(self) -> StarterWarmup:
        self.state = "training" if self.first_run else "loading"
        self._started = time.monotonic()
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        before = set(self.cache_dir.glob("*.json"))
        try:
            # The very StarterHeads the container's intent classifier falls back to: same lock, same cache.
            self._container.embedded_models.starter(self._tenant_id)
        except Exception as error:
            traceback.print_exc()
            self.error = f"{type(error).__name__}: {error}"
            self.state = "failed"
            print(
                f"[stack] starter intent head not ready ({self.error}): the first triage trains it instead",
                file=sys.stderr,
                flush=True,
            )
            return
        finally:
            self.seconds = round(time.monotonic() - self._started, 1)
        self.trained = bool(set(self.cache_dir.glob("*.json")) - before)
        self.state = "ready"
        if self.trained:
            print(
                f"[stack] starter intent head trained in {self.seconds:.1f}s and cached in {self.cache_dir}: "
                "conversations no longer wait for it",
                file=sys.stderr,
                flush=True,
            )

    def health(self) -> dict[str, Any]:
        """What `GET /v1/health` shows under `warmup`."""
        found: dict[str, Any] = {"state": self.state}
        if self.state in ("training", "loading"):
            found["seconds"] = round(time.monotonic() - self._started, 1)
            found["detail"] = "triage waits for it; conversations are accepted and answered once it is ready"
        else:
            found["seconds"] = self.seconds
            found["trained"] = self.trained
        if self.error:
            found["error"] = self.error
        return found

    def banner_line(self, shown_data_dir: Path | str) -> str | None:
        """The one banner line about it, on the first run only."""
        if not self.first_run:
            return None
        return (
            "Intent model   first run: training the starter intent head in the background (~10 s idle, longer under "
            f"load; cached in {shown_data_dir}/models/starter/); conversations wait for it; see `warmup` in /v1/health"
        )


def start(container: Any) -> StarterWarmup | None:
    """Start warming up, or None when triage has no starter head to prepare (the Bedrock backend)."""
    if container.settings.model_backend == "bedrock":
        return None
    return StarterWarmup(container).start()
