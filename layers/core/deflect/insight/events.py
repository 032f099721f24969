"""The canonical audit event types: one name per state change, who appends it, and which stage it belongs to.

Producers append these with `AuditLog.append(ctx, ticket_id, <type>, payload, evidence=[...])`. The timeline,
analytics, metrics and the EventBridge bus all read them, so a name is a contract: add new names here, never
rename one that is already in an audit chain (chains are locked; old names must stay readable forever).

Payload rules, for every producer:
- no personal data in a payload (it is locked in plain text for years): ids, labels, numbers, hashes only;
  personal data goes into evidence sealed with the customer's data key (`SealedEvidence.put_for_customer`);
- decision inputs (classification, retrieved article ids + versions + scores, model id, prompt hash, policy
  version, rollout mode) go in the payload of `decision.made` and the full `Decision` as its evidence
  (kind `decision`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["received", "triaged", "escalated", "decided", "written_back", "closed", "privacy", "other"]
STAGE_ORDER: tuple[Stage, ...] = ("received", "triaged", "escalated", "decided", "written_back", "closed")


@dataclass(frozen=True)
class EventType:
    name: str
    stage: Stage
    producer: str
    fields: str  # the payload fields readers rely on (others may be present)


_TYPES = (
    # intake (issue 3)
    EventType("message.received", "received", "intake (services/intake.py)",
              "message_id, provider, event, delivery_id, external_ticket_id, new_ticket, customer_id, "
              "customer_verified; replayed_by and quarantine_key when an operator replayed a quarantined body; "
              "wanted too: channel, sla_tier; evidence: the raw request (sealed)"),
    EventType("message.quarantined", "received", "intake (chain `quarantine-<digest of the key>`: a refused body may name no ticket)",
              "provider, reason (undecodable_body|no_delivery_id|unexpected_shape), quarantine_key, delivery_id "
              "(when known); no evidence: the body stays at quarantine_key until its holding key expires"),
    EventType("ticket.reopened", "closed", "intake", "by (customer|agent), previous_status"),
    EventType("ticket.resolved", "closed", "intake / approval",
              "by (agent|customer|system), corrected_fields (classification field names an agent changed)"),
    EventType("ticket.closed", "closed", "intake", "same as ticket.resolved"),
    EventType("deflection.confirmed", "closed", "intake (conversation API / solved by requester)", "by"),
    EventType("deflection.corrected", "closed", "approval / intake", "by"),
    EventType("agent.replied", "decided", "intake (a human agent's reply seen on a helpdesk update)",
              "action (answered|asked_diagnostics|escalated), public (bool)"),
    EventType("tenant.created", "other", "tenant admin (chain `tenant-config`)", "providers, fields changed"),
    EventType("tenant.config_updated", "other", "tenant admin (chain `tenant-config`)",
              "actor, fields, version, values {field: {old, new}} (never a secret; policy: see policy.changed)"),
    EventType("tenant.secret_rotated", "other", "tenant admin (chain `tenant-config`)", "provider"),
    EventType("tenant.connection_set", "other", "tenant admin (chain `tenant-config`)", "name (never the value)"),
    EventType("triage.profile_updated", "other", "triage profile (chain `tenant-config`)", "actor, fields, version"),
    EventType("policy.changed", "other", "tenant admin / `deflect policy set` (chain `tenant-config`)",
              "actor, from_version, to_version, changed, sha256, fields, version; values (other config fields "
              "set with it, as tenant.config_updated)"),
    EventType("intents.trained", "other", "`deflect intents train` (chain `tenant-config`)",
              "actor, to_version, intents, examples, taxonomy_sha256, embedding_model_id, gate"),
    EventType("intents.activated", "other", "`deflect intents train|activate` (chain `tenant-config`)",
              "actor, from_version, to_version"),
    EventType("customer.created", "other", "CRM sync (chain `customer-{id}`)", "customer_id, fields, verified, account_id"),
    EventType("customer.updated", "other", "CRM sync (chain `customer-{id}`)", "same as customer.created"),
    EventType("account.created", "other", "billing sync (chain `account-{id}`)", "account_id, fields"),
    EventType("account.updated", "other", "billing sync (chain `account-{id}`)", "same as account.created"),
    EventType("knowledge.published", "other", "knowledge ingestion: PUT, `deflect kb import`, bulk import (chain "
              "`knowledge-{article_id}`)", "article_id, version, content_sha256, visibility, segments, locale, product_area, "
              "article_source, chunks, actor, via, source (import row); evidence: the locked article body"),
    EventType("knowledge.updated", "other", "knowledge ingestion (chain `knowledge-{article_id}`)",
              "same as knowledge.published, plus previous_version, previous_sha256, fields (governed fields "
              "changed), values {field: {old, new}} for visibility, segments, locale, product_area, source"),
    EventType("knowledge.withdrawn", "other", "knowledge ingestion: DELETE, an import row its source does not "
              "publish (chain `knowledge-{article_id}`)", "article_id, version (the tombstone), previous_version, "
              "previous_sha256, reason, actor, via, source"),
    # triage (issue 5)
    EventType("decision.made", "triaged", "triage",
              "decision_id, outcome (deflect|ask_diagnostics|escalate), reasons, classification, retrieved "
              "[{article_id, version, score}], confidence, grounded, model_id, prompt_sha256, policy_version, "
              "rollout_mode; evidence: the Decision (kind decision)"),
    EventType("diagnostics.collected", "triaged", "triage / approval (an agent's run from a task)",
              "names, ok, task_id (agent runs); evidence: tool results"),
    EventType("answer.delivered", "written_back", "intake (conversation API answered in the response)",
              "decision_id, channel (conversation_api), message_id, outbox_ids (the reply's); once per decision, "
              "never the reply's text"),
    # escalation and approval (issue 6)
    EventType("escalation.summarized", "escalated", "escalation (escalation/steps.py)",
              "decision_id, execution, summary_sha256; evidence: the summary"),
    EventType("escalation.acknowledged", "escalated", "escalation", "outbox_id, language, follow_up_by"),
    EventType("task.opened", "escalated", "escalation (escalation/tasks.py)",
              "task_id, queue, kind, hops, required_role, due_at"),
    EventType("task.claimed", "escalated", "approval", "task_id"),
    EventType("task.reassigned", "escalated", "escalation", "task_id, from, to, hops, reason (timeout|agent)"),
    EventType("escalation.review_expired", "escalated", "escalation", "task_id, from, hops, reason"),
    EventType("task.decided", "decided", "approval (escalation/approval.py)",
              "task_id, decision_id, outcome (approve|edit|reject|reassign), roles, action {kind,...}, "
              "reply_sha256, note (redacted), diff {reply: unified diff lines}, approvals, "
              "edit_distance and edit_ratio (approve/edit of a proposed reply), approvals_required, policy_version"),
    EventType("task.decision_undelivered", "escalated", "approval", "task_id, decision_id"),
    EventType("escalation.writeback_enqueued", "decided", "escalation", "decision_id, outcome, outbox_ids"),
    EventType("escalation.completed", "decided", "escalation", "outcome, decided_by, hops, decision_id, queue, minutes"),
    # writeback (issue 7)
    EventType("writeback.delivered", "written_back", "writeback (services/writeback.py)",
              "outbox_id, kind, provider, external_ticket_id, attempts, caused_by, body_sha256, effects; for AI-caused "
              "items policy_version, rollout_mode, decided_rollout_mode and held_reason (a reply assist sent as a note)"),
    EventType("writeback.suppressed", "written_back", "writeback (shadow mode at send time)",
              "outbox_id, kind, provider, reason, held_reason, policy_version, rollout_mode, decided_rollout_mode"),
    EventType("writeback.not_shown", "written_back",
              "writeback (an API-only tenant's note or field change: the conversation API has no reader for it)",
              "outbox_id, kind, provider, caused_by, body_sha256, effects ([conversation_api:not_shown]); for "
              "AI-caused items policy_version, rollout_mode, decided_rollout_mode and held_reason; not a failure"),
    EventType("writeback.conflict", "written_back", "writeback", "outbox_id, kind, provider, reason"),
    EventType("writeback.dead", "written_back", "writeback", "outbox_id, kind, provider, reason"),
    EventType("writeback.replayed", "written_back", "writeback (deflect outbox replay)", "outbox_id, previous_status"),
    # accountability (issue 8)
    EventType("customer.erased", "privacy", "insight (erasure)", "customer_id, tickets, shared_tickets, redacted_items, "
              "deleted_items, key_destroyed (as it happened), thorough; on chain customer-<id> and each ticket's"),
)  # fmt: skip

EVENT_TYPES: dict[str, EventType] = {t.name: t for t in _TYPES}

# Names a producer might reasonably pick before agreeing on the list above: read them as their canonical type.
ALIASES: dict[str, str] = {
    "decision": "decision.made",
    "triage.decided": "decision.made",
    "decision.recorded": "decision.made",
    "writeback.succeeded": "writeback.delivered",
    "writeback.failed": "writeback.dead",
    "task.expired": "escalation.review_expired",
}

# Fallback by prefix, for types appended later that are not in the list yet.
_PREFIX_STAGE: tuple[tuple[str, Stage], ...] = (
    ("message.", "received"),
    ("triage.", "triaged"),
    ("diagnostics.", "triaged"),
    ("classification.", "triaged"),
    ("decision.", "triaged"),
    ("escalation.", "escalated"),
    ("task.", "escalated"),
    ("approval.", "decided"),
    ("answer.", "written_back"),
    ("writeback.", "written_back"),
    ("outbox.", "written_back"),
    ("ticket.", "closed"),
    ("customer.", "privacy"),
)


def canonical(type_name: str) -> str:
    return ALIASES.get(type_name, type_name)


def stage_of(type_name: str) -> Stage:
    known = EVENT_TYPES.get(canonical(type_name))
    if known:
        return known.stage
    return next((stage for prefix, stage in _PREFIX_STAGE if type_name.startswith(prefix)), "other")


def markdown_table() -> str:
    """The list as documentation (README and the lead's notes are generated from here, not retyped)."""
    rows = ["| type | stage | appended by | payload |", "|---|---|---|---|"]
    rows += [f"| `{t.name}` | {t.stage} | {t.producer} | {t.fields} |" for t in _TYPES]
    return "\n".join(rows)
