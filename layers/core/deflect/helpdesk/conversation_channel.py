"""The conversation API as a writeback channel, for tenants that answer their customers through it alone.

A conversation (provider `api`) has no helpdesk ticket to write to: its customer reads the reply in the answer to
`POST /v1/conversations` or on `GET /v1/conversations/{id}`. Without a `generic-writeback` connection (a signed
webhook to the tenant's own backend) that API is where the reply went, so delivering the reply's outbox item is
recording that: no HTTP call, a receipt naming `conversation_api:<outbox id>`. Writeback still holds the item to
the rollout mode, the cited articles and everything else it checks before it reaches a connector.

Two replies are shown there: triage's, and the one a person decided after an escalation (approved, edited, or
written on rejecting the proposal), which `GET /v1/conversations/{id}` shows once this receipt exists. Anything else
(an internal note, an assist or held note, the escalation's acknowledgement, a status) has no reader in the
conversation API and stays undeliverable, as without this channel.
"""

from __future__ import annotations

from collections.abc import Collection

from deflect.domain.models import OutboxItem
from deflect.escalation.records import outbox_id_for
from deflect.helpdesk.base import Connector
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.models import ConnectorName, HelpdeskReceipt

CHANNEL = "conversation_api"
# Who decides a triage reply (`Decision.decision_id`): what `GET /v1/conversations/{id}` shows is its reply.
TRIAGE_DECISION_PREFIX = "dec_"
# What an escalation's items are caused by (`escalation:<execution name>`, deflect.escalation.steps).
ESCALATION_PREFIX = "escalation:"


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
        if not shown_by_conversation_api(item):
            raise HelpdeskNotConfigured(
                f"no generic connection for this tenant, and the conversation API does not show a {item.kind}"
            )
        return self.receipt(item, [f"{CHANNEL}:{item.outbox_id}"], idempotency_key=item.outbox_id)


def agents_reply_id(execution: str) -> str:
    """The outbox id of the public reply an escalation's decision sends: its writeback step's (ids derive from the
    execution and step, deflect.escalation.steps), never its acknowledgement's."""
    return outbox_id_for(execution, "writeback", "public_reply")


def shown_by_conversation_api(item: OutboxItem) -> bool:
    """A public reply triage decided, or the one a person decided after an escalation: the conversation API shows
    its text as the conversation's answer."""
    if item.kind != "public_reply" or not (item.body and item.body.strip()):
        return False
    cause = item.caused_by or ""
    if cause.startswith(TRIAGE_DECISION_PREFIX):
        return True
    execution = cause.removeprefix(ESCALATION_PREFIX)
    return cause.startswith(ESCALATION_PREFIX) and item.outbox_id == agents_reply_id(execution)
