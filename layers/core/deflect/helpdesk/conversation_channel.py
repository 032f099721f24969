"""The conversation API as a writeback channel, for tenants that answer their customers through it alone.

A conversation (provider `api`) has no helpdesk ticket to write to: its customer reads the reply in the answer to
`POST /v1/conversations` or on `GET /v1/conversations/{id}`. Without a `generic-writeback` connection (a signed
webhook to the tenant's own backend) that API is where the reply went, so delivering the reply's outbox item is
recording that: no HTTP call, a receipt naming `conversation_api:<outbox id>`. Writeback still holds the item to
the rollout mode, the cited articles and everything else it checks before it reaches a connector.

Three messages are shown there: triage's reply, the escalation's acknowledgement ("a person will follow up"), and
the reply a person decided after the escalation (approved, edited, or written on rejecting the proposal);
`GET /v1/conversations/{id}` lists each in its `messages` once this receipt exists (triage's also when the `200`
carried it), and shows the latest decision's in `decision`.

What has no reader there by design (the escalation's own notes for agents, which read its summary and decision in
their task view; a tag, status or field change) ends `done` too, with the receipt effect `conversation_api:not_shown`
(writeback audits it `writeback.not_shown`): an outcome the trail records, not a failure for the dead-letter alarm.
A note that hands a person work only it shows (a held reply's, an assist-mode draft) and any other public reply
stay undeliverable (`dead`, alarmed), and account actions never come here: without a CRM connection they stay
`dead`.
"""

from __future__ import annotations

from collections.abc import Collection

from deflect.domain.models import OutboxItem, OutboxKind
from deflect.escalation.records import outbox_id_for
from deflect.helpdesk.base import Connector
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.models import ConnectorName, HelpdeskReceipt

CHANNEL = "conversation_api"
# Who decides a triage reply (`Decision.decision_id`): what `GET /v1/conversations/{id}` shows is its reply.
TRIAGE_DECISION_PREFIX = "dec_"
# What an escalation's items are caused by (`escalation:<execution name>`, deflect.escalation.steps).
ESCALATION_PREFIX = "escalation:"
# The receipt effect of an item the conversation API has no reader for (one name for all: nothing was posted).
NOT_SHOWN = f"{CHANNEL}:not_shown"
# Changes to helpdesk fields: the conversation API has none.
FIELD_KINDS: frozenset[OutboxKind] = frozenset({"tags", "status", "custom_fields"})


class ConversationChannel(Connector):
    # Stands in for the tenant's generic webhook: receipts, watermarks and audit name that connector.
    provider: ConnectorName = "generic"
    comment_effect = CHANNEL

    def __init__(self, tenant_id: str) -> None:
        # No credentials and no HTTP client: nothing leaves Deflect.
        self.tenant_id = tenant_id
        self.bot = None
        self._requests = 0

    def auth_headers(self) -> dict[str, str]:
        return {}

    def send(self, item: OutboxItem, *, others: Collection[str] = frozenset()) -> HelpdeskReceipt:
        # `others` is not needed: the effect is this item's own, named by its outbox id, and posted nowhere.
        if shown_by_conversation_api(item):
            return self.receipt(item, [f"{CHANNEL}:{item.outbox_id}"], idempotency_key=item.outbox_id)
        if not_shown_by_design(item):
            return self.receipt(item, [NOT_SHOWN], idempotency_key=item.outbox_id)
        # A public message the customer could never read, or a note that hands a person work nobody will see (a
        # held reply, an assist-mode draft): that must alarm.
        raise HelpdeskNotConfigured(
            f"no generic connection for this tenant, and the conversation API does not show a {item.kind}"
        )


def agents_reply_id(execution: str) -> str:
    """The outbox id of the public reply an escalation's decision sends: its writeback step's (ids derive from the
    execution and step, deflect.escalation.steps), never its acknowledgement's."""
    return outbox_id_for(execution, "writeback", "public_reply")


def acknowledgement_id(execution: str) -> str:
    """The outbox id of an escalation's "a person will follow up": its acknowledge step's."""
    return outbox_id_for(execution, "acknowledged", "public_reply")


def shown_by_conversation_api(item: OutboxItem) -> bool:
    """A public reply triage decided, an escalation's acknowledgement, or the reply a person decided after the
    escalation: the conversation API shows its text to the conversation's customer."""
    if item.kind != "public_reply" or not (item.body and item.body.strip()):
        return False
    cause = item.caused_by or ""
    if cause.startswith(TRIAGE_DECISION_PREFIX):
        return True
    execution = cause.removeprefix(ESCALATION_PREFIX)
    return cause.startswith(ESCALATION_PREFIX) and item.outbox_id in (
        agents_reply_id(execution),
        acknowledgement_id(execution),
    )


def not_shown_by_design(item: OutboxItem) -> bool:
    """A field change, or the escalation's own note for agents (its summary and decision, which agents read in the
    task view). Not a held change's note or an assist-mode draft: those ask a person for work only the note shows."""
    if item.kind in FIELD_KINDS:
        return True
    return item.kind == "internal_note" and (item.caused_by or "").startswith(ESCALATION_PREFIX)


def not_shown(receipt: HelpdeskReceipt) -> bool:
    """The receipt of an item the conversation API has no reader for: nothing was delivered, by design."""
    return receipt.effects == [NOT_SHOWN]
