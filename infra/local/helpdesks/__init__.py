"""Local, stateful stand-ins for Zendesk, Intercom, Freshdesk, Jira Service Management and CRM webhooks.

`start_helpdesks(port=0)` serves them all on 127.0.0.1 (`/{provider}/{account}/...`); used by `make run`
and by the tests. Auth is checked, every call recorded, faults (429 + Retry-After, 5xx, timeouts) and human
edits (a newer agent comment, a status change, a reassignment) can be injected, and effects are counted per
outbox id so tests can prove exactly-once delivery.
"""

from infra.local.helpdesks.server import HelpdeskServer, HelpdesksHandle, connect_tenant, start_helpdesks
from infra.local.helpdesks.state import BOT, CUSTOMER, HUMAN_AGENT, PROVIDERS, Fault, HelpdeskState, credentials_for

__all__ = [
    "BOT",
    "CUSTOMER",
    "HUMAN_AGENT",
    "PROVIDERS",
    "Fault",
    "HelpdeskServer",
    "HelpdeskState",
    "HelpdesksHandle",
    "connect_tenant",
    "credentials_for",
    "start_helpdesks",
]
