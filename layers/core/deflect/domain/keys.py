"""Key layout of SupportTable and the evidence bucket. Every key starts with the tenant.

The `#` separator after the tenant id is what stops `acme` from matching `acme-corp`:
a key prefix is always `T#{tenant}#`, never `T#{tenant}`.
"""

from deflect.domain.tenancy import validate_tenant_id


def tenant_pk(tenant_id: str) -> str:
    return f"T#{validate_tenant_id(tenant_id)}"


def entity_pk(tenant_id: str, kind: str, entity_id: str) -> str:
    if "#" in entity_id:
        raise ValueError("entity ids may not contain '#'")
    return f"T#{validate_tenant_id(tenant_id)}#{kind}#{entity_id}"


def ticket_pk(tenant_id: str, ticket_id: str) -> str:
    return entity_pk(tenant_id, "TICKET", ticket_id)


def customer_pk(tenant_id: str, customer_id: str) -> str:
    return entity_pk(tenant_id, "CUST", customer_id)


def account_pk(tenant_id: str, account_id: str) -> str:
    return entity_pk(tenant_id, "ACCT", account_id)


def task_pk(tenant_id: str, task_id: str) -> str:
    return entity_pk(tenant_id, "TASK", task_id)


def outbox_pk(tenant_id: str, outbox_id: str) -> str:
    return entity_pk(tenant_id, "OUTBOX", outbox_id)


def article_pk(tenant_id: str, article_id: str) -> str:
    return entity_pk(tenant_id, "KB", article_id)


def audit_pk(tenant_id: str, ticket_id: str) -> str:
    return entity_pk(tenant_id, "AUDIT", ticket_id)


def audited_tickets_pk(tenant_id: str) -> str:
    """Tenant-wide list of tickets with an audit chain, so verification never needs a Scan."""
    return f"{tenant_pk(tenant_id)}#AUDITED"


def s3_prefix(tenant_id: str) -> str:
    return f"tenant={validate_tenant_id(tenant_id)}/"


def evidence_key(tenant_id: str, ticket_id: str, sha256: str) -> str:
    return f"{s3_prefix(tenant_id)}tickets/{ticket_id}/evidence/{sha256}.json"


def audit_object_key(tenant_id: str, ticket_id: str, seq: int, event_hash: str) -> str:
    return f"{s3_prefix(tenant_id)}audit/tickets/{ticket_id}/{seq:010d}-{event_hash}.json"
