"""Health: which backing services this function reached, and what runs behind them.

Probes are zero-argument callables built by an adapter (deflect.adapters.aws_probes); each raises a domain
error when its service does not answer. A service that answered but refused this function's permissions is
reachable: least-privilege functions on AWS may not be allowed to describe every resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import BaseModel

from deflect.domain.errors import DeflectError, Forbidden, NotFound

DependencyState = Literal["ok", "denied", "missing", "unreachable"]
Probe = Callable[[], None]


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    dependencies: dict[str, DependencyState]
    emulator: str | None = None


def check_health(probes: Mapping[str, Probe], *, version: str, emulator: str | None = None) -> HealthReport:
    found: dict[str, DependencyState] = {}
    for name, probe in probes.items():
        try:
            probe()
            found[name] = "ok"
        except Forbidden:
            found[name] = "denied"
        except NotFound:
            found[name] = "missing"
        except DeflectError:
            found[name] = "unreachable"
        except Exception:  # a probe must never turn the health route into a 500
            found[name] = "unreachable"
    healthy = all(state in ("ok", "denied") for state in found.values())
    return HealthReport(
        status="ok" if healthy else "degraded", version=version, dependencies=found, emulator=emulator or None
    )
