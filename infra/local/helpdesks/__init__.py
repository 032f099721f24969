"""Local, stateful stand-ins for Zendesk, Intercom, Freshdesk, Jira Service Management and CRM webhooks.

`start_helpdesks(port=0)` serves them all on 127.0.0.1 (`/{provider}/{account}/...`); used by `make run`
and by the tests. Auth is checked, every call recorded, faults (429 + Retry-After, 5xx, timeouts) and human
edits (a newer agent comment, a status change, a reassignment) can be injected, and effects are counted per
outbox id so tests can prove exactly-once delivery.
"""

from infra.local.helpdesks.server import HelpdeskServer, HelpdesksHandle, connect_tenant, start_helpdesks
from infra.local.helpdesks.state import (
    BOT,
    CUSTOMER,
    HUMAN_AGENT,
    PROVIDERS,
    Fault,
    HelpdeskState,
    credentials_for,
)

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
    "stack_hook",
    "start_helpdesks",
]


RUNNING: HelpdesksHandle | None = None  # the local stack's helpdesks, for benchmarks in the same process


def stack_hook(stack) -> None:  # type: ignore[no-untyped-def]
    """`make run`: start the local helpdesks, connect the demo tenant to them, and feed the writeback function
    the SupportTable stream (it relays new outbox items to its queue) as well as its queue, as on AWS
    (DEFLECT_OUTBOX_STREAM=0 turns the stream off)."""
    import os

    import boto3

    from deflect.bootstrap import container
    from infra.local import template as tpl
    from infra.local.helpdesks.outbox_stream import OutboxStreamPoller
    from infra.local.seed import DEMO_TENANT

    global RUNNING
    handle = RUNNING = start_helpdesks(
        int(os.environ.get("DEFLECT_HELPDESKS_PORT", "0")), HelpdeskState(adopt_unknown_tickets=True)
    )
    stack.on_stop(handle.stop)
    connect_tenant(container().secrets, handle, DEMO_TENANT)
    stack.note(
        f"Helpdesks      {handle.url}/{{zendesk,intercom,freshdesk,jira,crm}}/{DEMO_TENANT}   control {handle.url}/_control/"
    )
    if os.environ.get("DEFLECT_OUTBOX_STREAM", "1") != "0":
        function, spec = next((name, spec) for name, spec in tpl.functions().items() if spec.stream)
        poller = OutboxStreamPoller(
            boto3.session.Session(),
            stack.resources.tables["SupportTable"],
            function,
            stack.functions.invoke,
            filters=spec.stream_filters,
        )
        poller.start()
        stack.on_stop(poller.stop)
        stack.note(f"Outbox stream  SupportTable stream → {function} → WritebackQueue → {function}")
