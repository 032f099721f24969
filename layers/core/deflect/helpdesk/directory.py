"""Finds the connector for an outbox item: which provider, whose credentials (per tenant, from the SecretStore).

Account actions always go to the tenant's CRM webhook; items of chat/API tickets go to its generic webhook (a tenant
without one answers through the conversation API itself: `ConversationChannel`); everything else to the ticket's
helpdesk. Credentials are stored per tenant under `<provider>-writeback`
(e.g. `zendesk-writeback`), apart from the intake's webhook secret for the same provider. Connectors are cached per tenant and secret version, so a rotated
secret takes effect as soon as the SecretStore's cache returns it.
"""

from __future__ import annotations

import hashlib
import threading

from deflect.domain.models import OutboxItem
from deflect.helpdesk.base import Connector
from deflect.helpdesk.conversation_channel import ConversationChannel
from deflect.helpdesk.errors import HelpdeskNotConfigured
from deflect.helpdesk.freshdesk import FreshdeskConnector
from deflect.helpdesk.http import HelpdeskHttp
from deflect.helpdesk.intercom import IntercomConnector
from deflect.helpdesk.jira import JiraConnector
from deflect.helpdesk.models import ConnectorName, HelpdeskCredentials
from deflect.helpdesk.webhook import SignedWebhookConnector
from deflect.helpdesk.zendesk import ZendeskConnector
from deflect.ports import SecretStore

CONNECTORS: dict[str, type[Connector]] = {
    "zendesk": ZendeskConnector,
    "intercom": IntercomConnector,
    "freshdesk": FreshdeskConnector,
    "jira": JiraConnector,
    "crm": SignedWebhookConnector,
    "generic": SignedWebhookConnector,
}


def secret_name(name: str) -> str:
    """Writeback's API credentials live beside, never in place of, the intake's webhook secret for a provider."""
    return f"{name}-writeback"


def connector_name(item: OutboxItem) -> ConnectorName:
    if item.kind == "account_action":
        return "crm"
    if item.provider in ("generic", "api"):
        return "generic"
    return item.provider  # type: ignore[return-value]


class HelpdeskDirectory:
    def __init__(self, secrets: SecretStore, http: HelpdeskHttp | None = None) -> None:
        self.secrets = secrets
        self.http = http or HelpdeskHttp()
        self._cache: dict[tuple[str, str, str], Connector] = {}
        self._lock = threading.Lock()

    def connector(self, tenant_id: str, item: OutboxItem) -> Connector:
        name = connector_name(item)
        if item.provider == "api" and name == "generic" and not self.secrets.secrets(tenant_id, secret_name(name)):
            # No backend of the tenant's to push to: its customers read the reply from the conversation API.
            return ConversationChannel(tenant_id)
        return self.connector_for(tenant_id, name)

    def connector_for(self, tenant_id: str, name: ConnectorName) -> Connector:
        stored = self.secrets.secrets(tenant_id, secret_name(name))
        if not stored:
            raise HelpdeskNotConfigured(f"no {name} connection for this tenant")
        fingerprint = hashlib.sha256(stored[0].encode()).hexdigest()
        key = (tenant_id, name, fingerprint)
        with self._lock:
            found = self._cache.get(key)
            if found is None:
                credentials = HelpdeskCredentials.parse(name, stored[0])
                # A rotated secret replaces the connector built from the previous one.
                for old in [k for k in self._cache if k[:2] == key[:2]]:
                    del self._cache[old]
                found = self._cache[key] = CONNECTORS[name](tenant_id, credentials, self.http)
            return found
