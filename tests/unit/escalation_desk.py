"""An in-memory escalation desk for unit tests of human tasks and approvals: tenant `acme`, ticket `t-1`, a
reversible token cipher, and the workflow, notifier and clock the test passes in. No sockets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deflect.domain.models import Classification, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.escalation import policy
from deflect.escalation.models import EscalationState
from deflect.escalation.records import EscalationPorts
from deflect.escalation.tasks import HumanTasks
from deflect.repositories import TenantConfigs, save
from deflect.services.audit import AuditLog
from tests.unit.triage_fakes import Store


class Clock:
    """A stopped clock the test moves by setting `at`."""

    def __init__(self) -> None:
        self.at = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


class Cipher:
    def encrypt(self, tenant_id: str, token: str) -> str:
        return "enc:" + token

    def decrypt(self, tenant_id: str, ciphertext: str) -> str:
        return ciphertext.removeprefix("enc:")


class Notifier:
    """SNS as a list of the events published."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, ctx: TenantContext, event: str, detail: dict[str, Any]) -> None:
        self.sent.append(event)


@dataclass
class Desk:
    ctx: TenantContext  # the workflow's (system) context
    ports: EscalationPorts
    tasks: HumanTasks
    audit: AuditLog
    state: EscalationState  # an escalation of t-1, routed by the tenant's plan


def escalation_desk(*, workflow: Any = None, notifier: Any = None, clock: Clock | None = None) -> Desk:
    ctx = TenantContext.system("acme", actor="deflect:escalation")
    store, evidence = Store(), MemoryEvidenceStore()
    audit = AuditLog(store, evidence)
    config = TenantConfig(tenant_id="acme", display_name="Acme")
    save(store, ctx, [TenantConfigs(store).save_write(config)])
    timing: dict[str, Any] = {} if clock is None else {"now": clock, "sleep": lambda s: None}
    ports = EscalationPorts(
        store=store,
        evidence=evidence,
        audit=audit,
        workflow=workflow,
        cipher=Cipher(),
        notifier=notifier if notifier is not None else Notifier(),
        writeback=None,
        **timing,
    )
    state = EscalationState(
        tenant_id="acme",
        ticket_id="t-1",
        decision_id="dec_1",
        classification=Classification(intent="how_to", intent_confidence=0.9),
    )
    state = state.model_copy(update={"route": policy.first_route(state, config)})
    return Desk(ctx, ports, HumanTasks(ports), audit, state)
