"""Writeback: dispatch outbox items to helpdesks and CRMs with exactly one effect per outbox id.

One dispatch, and why each step is where it is:
1. load the item (DynamoDB, consistent read) — done / conflict / dead items are acknowledged, nothing more;
2. claim it: status `dispatching`, attempts + 1, guarded on its version. A crash from here on leaves a claim
   that another delivery takes over once the lease (longer than the function timeout) has run out;
3. send through the connector. On every attempt after the item's first (`dispatches`, which a replay keeps), the
   connector first looks on the helpdesk for the effect an earlier attempt may have made (a marker or its own
   comment, never one Deflect recorded for another item) and does not send it again; a first attempt does not
   look. Idempotency keys go where the provider honours them. An account action is sent only when the
   escalation decision that caused it approves exactly that action (`approval_refusal`);
4. store the receipt (item `done` + a RECEIPT item created only once + what it posted, by effect id, on the
   ticket + the ticket's writeback watermark), in one transaction with the audit index — only then is the delivery
   acknowledged.
The watermark says "Deflect's own writes up to here, and nobody else's since <from>": it moves only for an item
whose send checked the ticket for newer edits, and a later item measures newer edits from it only when its own
snapshot is no older than <from>. A note (never checked: it overwrites nothing), a held note or a reply turned
into a note therefore never hides an agent's edit from the items queued behind it.
An AI-caused item is held to the tenant's rollout policy as it is when the item goes out, not only as it was
when decided: now shadow, it is suppressed (`done`, audited, nothing sent); now assist, a public answer becomes
an internal note for agents. Items a person decided (account actions, escalation outcomes) are never held back
by a mode.
A public reply sending AI-written text (a triage answer, an escalation's proposal approved unchanged) is also held
to the articles it quotes as they are when it goes out: one deleted, expired, superseded, no longer readable by
the customer, or rewritten without the quoted passage since the draft makes it a held note for agents (as a
conflict does), never a reply. A reply an agent edited is theirs and goes out as written.
Conflicts are recorded, the public reply is downgraded to an internal note for a human, and audited. Transient
failures release the claim and let the queue retry; after `max_attempts`, or on a permanent failure, the item
is `dead`, its message goes to the DLQ (before the status, so no dead item lacks one) and `replay` revives it.
An account action without that approval is refused the same way: `dead`, audited, in the DLQ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from deflect.domain import keys
from deflect.domain.canonical import canonical_json, sha256_hex
from deflect.domain.errors import Conflict, NotFound, Throttled, TransientFailure
from deflect.domain.models import Citation, Decision, OutboxItem, OutboxStatus, utcnow
from deflect.domain.tenancy import TenantContext
from deflect.helpdesk.base import COMMENT_KINDS, Connector, parse_time
from deflect.helpdesk.conversation_channel import not_shown
from deflect.helpdesk.directory import connector_name
from deflect.helpdesk.errors import HelpdeskConflict, PermanentFailure
from deflect.helpdesk.models import HelpdeskReceipt
from deflect.knowledge.articles import ArticleRepository
from deflect.knowledge.models import Audience
from deflect.observability import logger
from deflect.ports import DeadLetters, HelpdeskConnector, HelpdeskConnectors, Put, SupportStore, WorkQueue
from deflect.repositories import Accounts, Customers, Outbox, TenantConfigs, Tickets, bumped, put_new
from deflect.services import outbox as outbox_items
from deflect.services.audit import AuditLog
from deflect.services.outbox import OutboxRef
from deflect.triage import policy as triage_policy

ACTOR = "deflect:writeback"
HANDLED: frozenset[str] = frozenset({"done", "conflict", "dead"})
# Nothing left to deliver (a held change is `conflict`; its note for agents is an item of its own).
FINISHED: frozenset[str] = frozenset({"done", "conflict"})
OPEN_STATUSES: tuple[OutboxStatus, ...] = ("pending", "dispatching", "failed", "conflict", "dead")
Outcome = Literal[
    "delivered", "replayed", "not_shown", "conflict", "dead", "suppressed", "already_handled", "missing"
]
HELD_BY_SHADOW = "rollout mode is now shadow"
HELD_BY_ASSIST = "rollout mode is now assist: the public reply went to agents as an internal note"


class InFlight(TransientFailure):
    """Another worker holds a live claim on this item: retry later, do not send in parallel."""

    code = "in_flight"


class Unapproved(PermanentFailure):
    """An account action no recorded approval covers: refused, never retried as is."""

    code = "unapproved_action"
    public_message = "the account action has no matching approval"


@dataclass(frozen=True)
class Drained:
    """What `drain_dead_letters` did: DLQ messages removed, and the items it re-queued before removing theirs."""

    removed: int
    requeued: list[str]


@dataclass(frozen=True)
class Ruling:
    """The tenant's rollout policy as an AI-caused item met it right before sending: what the audit records, so
    what was held back, and under which policy version, is on the record (`deflect policy show --version`)."""

    policy_version: int
    rollout_mode: str  # the mode now
    decided_mode: str  # the mode the item was decided under
    held_reason: str | None = None  # None: sent as decided

    def audit(self) -> dict[str, Any]:
        return {
            "policy_version": self.policy_version,
            "rollout_mode": self.rollout_mode,
            "decided_rollout_mode": self.decided_mode,
            "held_reason": self.held_reason,
        }


@dataclass(frozen=True)
class DispatchResult:
    outbox_id: str
    outcome: Outcome
    detail: str = ""
    # Seconds from the item's creation (the decision's commit) to its recorded effect.
    age_s: float | None = None


class Writeback:
    def __init__(
        self,
        store: SupportStore,
        connectors: HelpdeskConnectors,
        *,
        queue: WorkQueue | None = None,
        dead_letters: DeadLetters | None = None,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = utcnow,
        max_attempts: int = 5,
        lease_s: float = 90.0,
        checkpoint: Callable[[str], None] | None = None,
        articles: ArticleRepository | None = None,
    ) -> None:
        self.store = store
        self.outbox = Outbox(store)
        self.connectors = connectors
        self.queue = queue
        self.dead_letters = dead_letters
        self.audit = audit  # None only in tests of this service alone
        # Where a reply's quoted articles are checked before sending; their bodies are in the audit's evidence store.
        self.articles = articles or (ArticleRepository(store, audit.evidence) if audit is not None else None)
        self.clock = clock
        self.max_attempts = max_attempts
        self.lease = timedelta(seconds=lease_s)
        # Named points between steps; tests raise there to prove a crash anywhere loses and repeats nothing.
        self.checkpoint = checkpoint or (lambda step: None)

    # ------------------------------------------------------------------ relay (the table stream)
    def relay(self, ref: OutboxRef) -> None:
        """Hand a committed, pending item to the queue, where dispatch (with its retries and backoff) happens.

        The SupportTable stream's half of the transactional outbox: every committed item reaches the queue even
        if the process that committed it died before enqueuing. It never calls a helpdesk, so a helpdesk outage
        cannot hold up the stream's shard. The copy of an item that was already enqueued carries the same delivery id,
        so the FIFO queue drops it; a duplicate that still arrives is harmless (receipts).
        """
        if self.queue is None:
            raise RuntimeError("the writeback queue is not configured")
        outbox_items.send(self.queue, TenantContext.system(ref.tenant_id, ACTOR), ref)

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, ref: OutboxRef) -> DispatchResult:
        """Deliver one item. Returns when the delivery may be acknowledged; raises to have it retried."""
        ctx = TenantContext.system(ref.tenant_id, ACTOR)
        item = self.outbox.get(ctx, ref.outbox_id)
        self.checkpoint("loaded")
        if item is None:
            logger().warning("outbox item not found", extra={"outbox_id": ref.outbox_id})
            return DispatchResult(ref.outbox_id, "missing")
        if item.status in HANDLED:
            return DispatchResult(item.outbox_id, "already_handled", item.status)
        if self._claim_live(item):
            raise InFlight(
                "another delivery is working on this item", retry_after_s=self.lease.total_seconds()
            )
        decided, allowed, ruling = self._under_current_policy(ctx, item)
        if allowed is None:
            return self._suppressed(ctx, decided, ruling)
        claimed = self._claim(ctx, allowed)
        self.checkpoint("claimed")
        try:
            if claimed.kind == "account_action":
                self._require_approval(ctx, claimed)
            # After the claim: a failed read counts as an attempt, and nothing is sent unchecked.
            changed = self._changed_sources(ctx, claimed)
            if changed is None:
                connector = self.connectors.connector(ref.tenant_id, claimed)
                sent, checked_from = self._with_baseline(ctx, claimed)
                receipt = self._send(ctx, connector, sent)
        except HelpdeskConflict as conflict:
            self.checkpoint("sent")
            return self._conflict(ctx, claimed, conflict)
        except PermanentFailure as failure:
            return self._dead(ctx, claimed, failure.detail)
        except Throttled as throttled:
            self._release(ctx, claimed, f"throttled: {throttled.detail}", counts=False)
            raise
        except Exception as failure:
            # TransientFailure, and anything unexpected (a malformed answer): an attempt that may be retried.
            detail = failure.detail if isinstance(failure, TransientFailure) else type(failure).__name__
            if claimed.attempts >= self.max_attempts:
                return self._dead(ctx, claimed, f"{claimed.attempts} attempts, last: {detail}")
            self._release(ctx, claimed, detail, counts=True)
            raise
        if changed is not None:
            return self._conflict(ctx, claimed, changed)
        self.checkpoint("sent")
        return self._delivered(ctx, claimed, receipt, checked_from, ruling)

    def _claim_live(self, item: OutboxItem) -> bool:
        """Is a delivery (still within its lease) working on this item?"""
        return item.status == "dispatching" and item.updated_at + self.lease > self.clock()

    def _claim(self, ctx: TenantContext, item: OutboxItem) -> OutboxItem:
        claimed = item.model_copy(
            update={
                "status": "dispatching",
                "attempts": item.attempts + 1,
                "dispatches": _dispatched(item) + 1,
                "updated_at": self.clock(),
            }
        )
        try:
            self.store.put(ctx, self.outbox.save_write(claimed))
        except Conflict:
            raise InFlight("another delivery claimed this item first") from None
        return bumped(claimed)

    def _require_approval(self, ctx: TenantContext, item: OutboxItem) -> None:
        """Defence in depth: approval happens in escalation, but any other write of an outbox item (a bug, a
        script, a leaked role) would otherwise reach the CRM as an account action."""
        refusal = approval_refusal(self.store, self.audit, ctx, item)
        if refusal:
            logger().warning("account action refused", extra={"outbox_id": item.outbox_id, "reason": refusal})
            raise Unapproved(f"refused: {refusal}")

    # ------------------------------------------------------------------ rollout mode, again
    def _under_current_policy(
        self, ctx: TenantContext, item: OutboxItem
    ) -> tuple[OutboxItem, OutboxItem | None, Ruling | None]:
        """(the item with the intent and rollout mode it was decided under, what the tenant's policy lets it be
        right before it is sent, the ruling for the audit): None in shadow (a kill switch stops what is already
        queued), a note for agents in assist, never more than was decided. Account actions are a person's approval,
        not an AI reply: no mode holds them back; nor escalation outcomes and held notes, which carry no mode (and
        no ruling)."""
        if item.kind == "account_action":
            return item, item, None
        decision = self._causing_decision(ctx, item) if item.rollout_mode is None else None
        if item.rollout_mode is None and decision is None:
            return item, item, None
        config = TenantConfigs(self.store).find(ctx)
        if config is None:
            return item, item, None  # no policy to hold it to: as decided
        if decision is not None:
            c = decision.classification
            item = item.model_copy(
                update={
                    "intent": c.intent if c else None,
                    "rollout_mode": decision.rollout_mode,
                    "intent_uncertain": c is not None and triage_policy.intent_uncertain(config.policy, c),
                }
            )
        assert item.rollout_mode is not None
        mode = outbox_items.mode_now(
            config.policy, item.rollout_mode, item.intent, intent_uncertain=item.intent_uncertain
        )
        ruling = Ruling(config.policy.version, mode, item.rollout_mode)
        if mode == "shadow":
            return item, None, replace(ruling, held_reason=HELD_BY_SHADOW)
        if mode == "assist" and item.kind == "public_reply" and not _acknowledgement(item):
            return item, assist_note(item), replace(ruling, held_reason=HELD_BY_ASSIST)
        return item, item, ruling

    def _causing_decision(self, ctx: TenantContext, item: OutboxItem) -> Decision | None:
        """The triage decision an item names (`caused_by`), for items that do not carry their intent and mode:
        stored before they existed, or by a producer that does not set them."""
        if not (item.caused_by or "").startswith("dec_"):
            return None  # a person's decision (escalation), a held note: not an AI effect
        decisions = Tickets(self.store).decisions(ctx, item.ticket_id)
        return next((d for d in decisions if d.decision_id == item.caused_by), None)

    def _suppressed(self, ctx: TenantContext, item: OutboxItem, ruling: Ruling | None) -> DispatchResult:
        reason = HELD_BY_SHADOW
        done = item.model_copy(
            update={
                "status": "done",
                "receipt": {"suppressed": reason},
                "last_error": None,
                "updated_at": self.clock(),
            }
        )
        # An earlier attempt (before the switch) may have reached the helpdesk: the audit says how many there were.
        payload = {
            **_summary(item),
            "reason": reason,
            "intent": item.intent,
            "dispatches": _dispatched(item),
            **(ruling.audit() if ruling else {}),
        }
        if not self._commit(ctx, item, "writeback.suppressed", payload, [self.outbox.save_write(done)]):
            return DispatchResult(item.outbox_id, "already_handled", "recorded by another delivery")
        self.checkpoint("recorded")
        logger().info("writeback suppressed", extra={"outbox_id": item.outbox_id, "reason": reason})
        return DispatchResult(item.outbox_id, "suppressed", reason)

    # ------------------------------------------------------------------ the articles a reply quotes, again
    def _changed_sources(self, ctx: TenantContext, item: OutboxItem) -> HelpdeskConflict | None:
        """Why this AI-written public reply must go to agents as a held note instead of to the customer: an article
        it quotes changed since the draft so that customer search would no longer answer with that passage. None
        when every cited article still stands (a newer version that still holds each quoted passage does).

        Cost: one HEAD and one version GetItem per cited article; an article with a newer version also has its
        body read once per quoted passage."""
        if item.kind != "public_reply":
            return None
        cited = self._citations(ctx, item)
        if not cited:
            return None
        if self.articles is None:
            # Nowhere to check them (this service built without an audit log, in tests): never send unchecked.
            return HelpdeskConflict(
                "cited articles could not be checked",
                current={"cited_articles": [], "earlier_dispatches": _dispatched(item) - 1},
            )
        by_article: dict[str, list[Citation]] = {}
        for citation in cited:
            by_article.setdefault(citation.article_id, []).append(citation)
        audience: list[Audience] = []  # read once, and only if a newer version restricts its readers
        changes: list[dict[str, Any]] = []
        for article_id, citations in by_article.items():
            version = max(c.version for c in citations)
            found = self._article_changes(ctx, item, article_id, citations, audience)
            if found:
                changes.append({"article_id": article_id, "version": version, **found})
        if not changes:
            return None
        reason = "cited article changed: " + "; ".join(
            f"{c['article_id']} v{c['version']} {', '.join(c['changes'])}" for c in changes
        )
        logger().info("reply held: cited article changed", extra={"outbox_id": item.outbox_id})
        # Earlier claims may have sent it before the article changed: the note must not say it was never sent.
        return HelpdeskConflict(
            reason, current={"cited_articles": changes, "earlier_dispatches": _dispatched(item) - 1}
        )

    def _citations(self, ctx: TenantContext, item: OutboxItem) -> list[Citation]:
        """What the reply quotes. An item stored before it recorded that: its triage decision's draft, when the
        reply sends that draft's text (an escalation's reply stored then is not checked)."""
        if item.citations is not None:
            return item.citations
        decision = self._causing_decision(ctx, item)
        draft = decision.draft if decision is not None else None
        return list(draft.citations) if draft and draft.text and draft.text in (item.body or "") else []

    def _article_changes(
        self,
        ctx: TenantContext,
        item: OutboxItem,
        article_id: str,
        citations: list[Citation],
        audience: list[Audience],
    ) -> dict[str, Any] | None:
        """How one cited article changed, as customer search sees it now; None when it did not in a way that
        matters (a newer version still holding every quoted passage)."""
        assert self.articles is not None
        head = self.articles.head(ctx, article_id)
        if head is None:
            return {"changes": ["not in the knowledge base"], "current_version": None}
        record = None if head.deleted else self.articles.version(ctx, article_id, head.current_version)
        if record is None or record.deleted or record.meta is None:
            return {"changes": ["deleted"], "current_version": head.current_version}
        meta, now_version = record.meta, head.current_version
        cited_version = max(c.version for c in citations)
        found: list[str] = []
        if meta.expires_at is not None and meta.expires_at <= self.clock():
            found.append(f"expired at {meta.expires_at.isoformat(timespec='minutes')}")
        if meta.superseded_by:
            found.append(f"superseded by {meta.superseded_by}")
        # The cited version was readable when drafted; only a newer one can have changed who may read it.
        if meta.visibility == "internal":
            found.append("now internal")
        elif meta.visibility == "segments" and now_version != cited_version:
            if not audience:
                audience.append(self._customer_audience(ctx, item))
            if not audience[0].may_read(meta.visibility, meta.segments):
                found.append("now only for segments the customer is not in: " + ", ".join(meta.segments))
        if now_version != cited_version and not _still_quoted(self.articles, ctx, now_version, citations):
            found.append(f"rewritten: v{now_version} no longer contains the quoted passage")
        return {"changes": found, "current_version": now_version} if found else None

    def _customer_audience(self, ctx: TenantContext, item: OutboxItem) -> Audience:
        """Who the customer is to the help center now, by triage's own rule (ticket, customer, account)."""
        # Imported here: only a reply citing a newly segment-restricted article needs it.
        from deflect.triage.profile import TriageProfile
        from deflect.triage.service import customer_options

        ticket = Tickets(self.store).get(ctx, item.ticket_id)
        customer = Customers(self.store).get(ctx, ticket.customer_id) if ticket and ticket.customer_id else None
        account_id = (ticket.account_id if ticket else None) or (customer.account_id if customer else None)
        account = Accounts(self.store).get(ctx, account_id) if account_id else None
        # Only the audience is read from these options: the profile's own settings do not affect it.
        audience: Audience = customer_options(TriageProfile(tenant_id=ctx.tenant_id), account, ticket)["audience"]
        return audience

    # ------------------------------------------------------------------ sending
    def _send(self, ctx: TenantContext, connector: HelpdeskConnector, item: OutboxItem) -> HelpdeskReceipt:
        """Send through the connector. A retry of a comment also names what Deflect posted for other items on this
        ticket: a helpdesk without markers (Freshdesk, Intercom) knows an earlier attempt by author + text, and
        another item's identical note must never pass for it."""
        others = self._posted_by_others(ctx, item) if _dispatched(item) > 1 else frozenset()
        if others and isinstance(connector, Connector):
            return connector.send(item, others=others)
        return connector.send(item)

    def _posted_by_others(self, ctx: TenantContext, item: OutboxItem) -> frozenset[str]:
        if item.kind not in COMMENT_KINDS:
            return frozenset()
        found = self.store.query(ctx, keys.ticket_pk(ctx.tenant_id, item.ticket_id), _posted_prefix(item))
        return frozenset(
            str(i.data["effect"])
            for i in found
            if i.data.get("outbox_id") != item.outbox_id and i.data.get("effect")
        )

    # ------------------------------------------------------------------ conflicts baseline
    def _with_baseline(self, ctx: TenantContext, item: OutboxItem) -> tuple[OutboxItem, datetime | None]:
        """(the item as sent, where the span of ticket history its conflict check covers starts — None when it
        is not checked: notes, held notes, anything without a snapshot).

        What 'a newer edit' is measured against: what the decision saw, or, later, what our own last checked write
        to this ticket left (so our earlier items never look like someone else's edit) — but only when that write's
        check reached back to what this decision saw: an edit the decision did not see and no check covered is
        never skipped.

        When the helpdesk sent no version with the customer's message (Freshdesk "Simple content" webhooks, a
        Zendesk trigger without updated_at), what the decision saw is when Deflect received that message: an
        agent's later reply is then still a conflict, never checked against nothing."""
        expected = item.expected_external_updated_at
        if expected is None:
            if item.kind not in outbox_items.OVERWRITING_KINDS or connector_name(item) == "generic":
                return item, None
            expected = self._received_at(ctx, item)
            item = item.model_copy(
                update={"expected_external_updated_at": expected, "baseline_from": "received"}
            )
        mark = self.store.get(ctx, keys.ticket_pk(ctx.tenant_id, item.ticket_id), _watermark_sk(item))
        ours = parse_time(mark.data.get("external_updated_at")) if mark else None
        # A watermark without `checked_from` (written before it existed, notes included) covers nothing.
        since = parse_time(mark.data.get("checked_from")) if mark else None
        if ours and since and since <= expected <= ours:
            return item.model_copy(update={"expected_external_updated_at": ours}), since
        return item, expected

    def _received_at(self, ctx: TenantContext, item: OutboxItem) -> datetime:
        """When Deflect received the customer's latest message before the item was made; the item's own creation
        when none is on record."""
        received = [
            m.received_at
            for m in Tickets(self.store).messages(ctx, item.ticket_id)
            if m.author == "customer" and m.received_at <= item.created_at
        ]
        return max(received, default=item.created_at)

    # ------------------------------------------------------------------ outcomes
    def _delivered(
        self,
        ctx: TenantContext,
        claimed: OutboxItem,
        receipt: HelpdeskReceipt,
        checked_from: datetime | None,
        ruling: Ruling | None = None,
    ) -> DispatchResult:
        """`checked_from`: where the span of history the send checked for others' edits starts (None: unchecked).
        `ruling`: the rollout policy an AI-caused item was held to (a public reply sent as a note says why)."""
        stored = receipt.model_dump(mode="json")
        # An item the conversation API has no reader for (a note of an API-only tenant): finished by design, audited
        # as such, nothing posted; not a delivery, and never dead (the DLQ alarm is for what failed).
        unread = not_shown(receipt)
        done = claimed.model_copy(
            update={"status": "done", "receipt": stored, "last_error": None, "updated_at": self.clock()}
        )
        writes = [
            self.outbox.save_write(done),
            # Created once: a second receipt for the same outbox id cannot be written.
            Put(pk=keys.outbox_pk(ctx.tenant_id, claimed.outbox_id), sk="RECEIPT", data=stored, expect="new"),
        ]
        writes += [] if unread else _posted_writes(ctx, claimed, receipt.effects)
        mark = receipt.external_updated_at
        if mark and checked_from and mark > checked_from:
            # Only a checked write moves the watermark: nobody else changed the ticket from `checked_from` until
            # this write. A note's receipt (never checked) would hide every edit made before it.
            writes.append(
                Put(
                    pk=keys.ticket_pk(ctx.tenant_id, claimed.ticket_id),
                    sk=_watermark_sk(claimed),
                    data={
                        "external_updated_at": mark.isoformat(),
                        "checked_from": checked_from.isoformat(),
                        "outbox_id": claimed.outbox_id,
                    },
                )
            )
        payload = {
            **_summary(claimed),
            "effects": receipt.effects,
            "replayed": receipt.replayed,
            "requests": receipt.requests,
            **(ruling.audit() if ruling else {}),
        }
        event = "writeback.not_shown" if unread else "writeback.delivered"
        if not self._commit(ctx, claimed, event, payload, writes):
            return DispatchResult(claimed.outbox_id, "already_handled", "recorded by another delivery")
        self.checkpoint("recorded")
        if unread:
            return DispatchResult(claimed.outbox_id, "not_shown", ",".join(receipt.effects))
        return DispatchResult(
            claimed.outbox_id,
            "replayed" if receipt.replayed else "delivered",
            ",".join(receipt.effects),
            age_s=(done.updated_at - claimed.created_at).total_seconds(),
        )

    def _conflict(
        self, ctx: TenantContext, claimed: OutboxItem, conflict: HelpdeskConflict
    ) -> DispatchResult:
        note = held_note(claimed, conflict)
        record = {"conflict": conflict.current, "held_note": note.outbox_id if note else None}
        conflicted = claimed.model_copy(
            update={
                "status": "conflict",
                "last_error": conflict.reason,
                "receipt": record,
                "updated_at": self.clock(),
            }
        )
        writes = [self.outbox.save_write(conflicted)]
        # A reply already posted before the conflict showed is this item's, not another's to find.
        writes += _posted_writes(ctx, claimed, conflict.current.get("delivered") or [])
        if note:
            writes.append(
                put_new(
                    keys.outbox_pk(ctx.tenant_id, note.outbox_id), "META", note, **Outbox.status_index(note)
                )
            )
        payload = {**_summary(claimed), "reason": conflict.reason, **record}
        if not self._commit(ctx, claimed, "writeback.conflict", payload, writes):
            return DispatchResult(claimed.outbox_id, "already_handled", "recorded by another delivery")
        self.checkpoint("recorded")
        logger().info("writeback conflict", extra={"outbox_id": claimed.outbox_id, "reason": conflict.reason})
        if note and self.queue:
            outbox_items.enqueue(self.queue, ctx, [note])
        return DispatchResult(claimed.outbox_id, "conflict", conflict.reason)

    def _dead(self, ctx: TenantContext, claimed: OutboxItem, reason: str) -> DispatchResult:
        if self.dead_letters:
            # The DLQ message first: a crash after it repeats the message (harmless), never loses it.
            self.dead_letters.send(
                ctx,
                {**outbox_items.message(claimed), "reason": reason[:500], "attempts": claimed.attempts},
                # Per claim: an item that dies again after a replay is a new dead letter.
                dedupe_id=outbox_items.ref(claimed).delivery_id,
                group_id=claimed.ticket_id,
            )
        dead = claimed.model_copy(
            update={"status": "dead", "last_error": reason[:1000], "updated_at": self.clock()}
        )
        if not self._commit(
            ctx,
            claimed,
            "writeback.dead",
            {**_summary(claimed), "reason": reason[:500]},
            [self.outbox.save_write(dead)],
        ):
            return DispatchResult(claimed.outbox_id, "already_handled", "recorded by another delivery")
        self.checkpoint("recorded")
        logger().warning(
            "outbox item dead", extra={"outbox_id": claimed.outbox_id, "attempts": claimed.attempts}
        )
        return DispatchResult(claimed.outbox_id, "dead", reason)

    def _release(self, ctx: TenantContext, claimed: OutboxItem, reason: str, *, counts: bool) -> None:
        attempts = claimed.attempts if counts else claimed.attempts - 1
        failed = claimed.model_copy(
            update={
                "status": "failed",
                "attempts": attempts,
                "last_error": reason[:1000],
                "updated_at": self.clock(),
            }
        )
        with contextlib.suppress(
            Conflict
        ):  # the lease ran out and another delivery took over: its outcome stands
            self.store.put(ctx, self.outbox.save_write(failed))

    def _commit(
        self,
        ctx: TenantContext,
        claimed: OutboxItem,
        event: str,
        payload: dict[str, Any],
        writes: list[Put],
        actor: str = ACTOR,
    ) -> bool:
        """One transaction (with the audit index when audited). False when another delivery got there first."""
        try:
            if self.audit is not None:
                self.audit.append(ctx, claimed.ticket_id, event, payload, actor=actor, writes=writes)
            else:
                self.store.transact(ctx, writes)
        except Conflict:
            current = self.outbox.get(ctx, claimed.outbox_id)
            if current is not None and current.status in HANDLED:
                return False
            raise
        return True

    # ------------------------------------------------------------------ operators
    def list(
        self, ctx: TenantContext, statuses: Sequence[OutboxStatus] = OPEN_STATUSES, limit: int | None = None
    ) -> list[OutboxItem]:
        found: list[OutboxItem] = []
        for status in statuses:
            found.extend(self.outbox.by_status(ctx, status, limit=limit))
        return sorted(found, key=lambda i: i.created_at)

    def replay(
        self,
        ctx: TenantContext,
        outbox_ids: Sequence[str] = (),
        statuses: Sequence[OutboxStatus] = ("dead", "failed"),
    ) -> list[str]:
        """Send dead (or stuck) items again: back to pending with a fresh attempt budget, audited, re-queued.

        Replaying does not skip the receipt check: an item whose effect did land is recognised, not repeated."""
        candidates = [self.outbox.get(ctx, i) for i in outbox_ids] if outbox_ids else self.list(ctx, statuses)
        replayed: list[str] = []
        for item in candidates:
            if item is None or item.status not in (*statuses, "pending", "dispatching"):
                continue
            if self._claim_live(item):
                continue  # a delivery may be sending it right now: a second message could post it twice
            revived = item.model_copy(
                update={
                    "status": "pending",
                    "attempts": 0,
                    # Kept: the next attempt must still look for what the earlier ones may have left.
                    "dispatches": _dispatched(item),
                    "last_error": f"replayed after: {item.last_error}",
                    "updated_at": self.clock(),
                }
            )
            payload = {**_summary(item), "previous_status": item.status, "replayed_by": ctx.actor}
            try:
                self._commit(
                    ctx,
                    item,
                    "writeback.replayed",
                    payload,
                    [self.outbox.save_write(revived)],
                    actor=ctx.actor,
                )
            except Conflict:
                continue  # changed while we looked: leave it to whoever changed it
            if self.queue:
                outbox_items.enqueue(self.queue, ctx, [revived])
            replayed.append(item.outbox_id)
        return replayed

    def drain_dead_letters(
        self, ctx: TenantContext, replayed: Collection[str] = (), *, max_batches: int = 10
    ) -> Drained:
        """Clear this tenant's DLQ messages that nothing needs any more, so the DLQ alarm clears, and never the
        last message of an item that still has to go out.

        A message goes when its item is finished (done, conflict) or in `replayed` (its new message is queued).
        An item still `pending` (SQS redrove it after it waited behind a failing item of its ticket: the FIFO queue
        counts those receives too) or `dispatching` with its lease run out (its deliveries timed out) has no other
        message: it is replayed first (a new revision, so SQS does not drop the message as a duplicate; the claim
        and `dispatches` still stop a second post), then its DLQ message goes. Anything else stays: dead or failed
        items nobody replayed, a live claim, other tenants, bodies we did not write. Kept messages are released only
        at the end: released at once, a FIFO DLQ hands the same first ones out again and the rest are never seen."""
        if self.dead_letters is None:
            return Drained(0, [])
        removed = 0
        kept: list[str] = []
        stranded: dict[str, tuple[OutboxItem, list[str]]] = {}
        try:
            for _ in range(max_batches):
                batch = self.dead_letters.receive(10)
                if not batch:
                    break
                for letter in batch:
                    item = None
                    if letter.body.get("tenant_id") == ctx.tenant_id and letter.body.get("outbox_id"):
                        item = self.outbox.get(ctx, str(letter.body["outbox_id"]))
                    if item is not None and (item.status in FINISHED or item.outbox_id in replayed):
                        self.dead_letters.delete(letter.handle)
                        removed += 1
                    elif item is not None and item.status in ("pending", "dispatching"):
                        stranded.setdefault(item.outbox_id, (item, []))[1].append(letter.handle)
                    else:
                        kept.append(letter.handle)
            # Oldest first: a ticket's effects keep their order on the FIFO queue.
            waiting = sorted(stranded.values(), key=lambda entry: entry[0].created_at)
            ids = [item.outbox_id for item, _ in waiting]
            # Without a queue to put them on, their DLQ message is all they have: kept.
            requeued = self.replay(ctx, ids, statuses=("pending", "dispatching")) if ids and self.queue else []
            for item, handles in waiting:
                if item.outbox_id in requeued:
                    for handle in handles:
                        self.dead_letters.delete(handle)
                        removed += 1
                else:
                    kept.extend(handles)  # a live claim, or changed meanwhile: looked at again next time
        finally:
            for handle in kept:
                self.dead_letters.release(handle)
        return Drained(removed, requeued)

    def sweep(self, ctx: TenantContext, older_than_s: float = 300.0) -> list[str]:
        """Re-queue items nobody is working on: committed but never enqueued (a crash after the commit),
        released after a transient failure, or claimed by a worker that died."""
        cutoff = self.clock() - timedelta(seconds=older_than_s)
        stale = [i for i in self.list(ctx, ("pending", "failed", "dispatching")) if i.updated_at <= cutoff]
        stale = [i for i in stale if i.status != "dispatching" or i.updated_at + self.lease <= self.clock()]
        if self.queue:
            outbox_items.enqueue(self.queue, ctx, stale)
        return [i.outbox_id for i in stale]


# ------------------------------------------------------------------------------ account action approvals
# What escalation/steps.py appends in the same transaction as the outbox items a decision causes.
WRITEBACK_ENQUEUED = "escalation.writeback_enqueued"
APPROVING = ("approve", "edit")


def approval_refusal(
    store: SupportStore, audit: AuditLog | None, ctx: TenantContext, item: OutboxItem
) -> str | None:
    """Why this account action must not be sent, or None when people approved exactly it.

    The item leads to its approval through what escalation recorded when it created the item: the ticket's
    `escalation.writeback_enqueued` audit event names the decision and the outbox ids it caused. That decision
    must be on record for this tenant and ticket, approve this very action, and carry the approvals the tenant's
    policy asks for (an approver; two different people above the amount line, or when an edit changed the
    currency and no limit currency compares it).
    """
    # Imported here: only account actions need them, and most writeback cold starts never see one.
    from deflect.escalation import policy
    from deflect.escalation.records import TaskDecisions

    if audit is None:
        return "no audit log to find the approval in"
    if item.action is None or item.action.kind == "none":
        return "the item carries no action"
    decision_id = _causing_decision(audit, ctx, item)
    if decision_id is None:
        return "no escalation decision on record caused this item"
    record = TaskDecisions(store).by_id(ctx, decision_id)
    if record is None or (record.tenant_id, record.ticket_id) != (item.tenant_id, item.ticket_id):
        return f"decision {decision_id} is not on record for this ticket"
    if record.outcome not in APPROVING:
        return f"decision {decision_id} was {record.outcome}, not an approval"
    if record.action != item.action:
        return f"decision {decision_id} approved a different action"
    config = TenantConfigs(store).find(ctx)
    if config is None or config.status != "active":
        return "the tenant has no active policy to check the approvals against"
    if policy.needs_approver(item.action, config.policy) and "approver" not in record.actor_roles:
        return f"decision {decision_id} was not made by an approver"
    needed = policy.approvals_needed(record, config.policy)  # record.action is item.action (checked above)
    approvals = len(set(record.approvals))
    if approvals < needed:
        return f"decision {decision_id} has {approvals} of {needed} approvals"
    return None


def _causing_decision(audit: AuditLog, ctx: TenantContext, item: OutboxItem) -> str | None:
    """The decision the ticket's audit chain names as the cause of this item; None when no intact event does."""
    entries = [e for e in audit.entries(ctx, item.ticket_id) if e.type == WRITEBACK_ENQUEUED]
    # An event that is not exactly what was appended (rewritten, or not matching its index entry) proves nothing.
    for event in reversed(audit.intact_events(ctx, entries)):
        if (
            event
            and event.ticket_id == item.ticket_id
            and item.outbox_id in (event.payload.get("outbox_ids") or [])
        ):
            decision_id = event.payload.get("decision_id")
            return str(decision_id) if decision_id else None
    return None


# ---------------------------------------------------------------------------------------------- helpers
def _dispatched(item: OutboxItem) -> int:
    """Claims so far. Items stored before `dispatches` existed have only their attempts to show."""
    return max(item.dispatches, item.attempts)


def _still_quoted(articles: ArticleRepository, ctx: TenantContext, version: int, citations: list[Citation]) -> bool:
    """Does `version` of the cited article still hold every passage the reply quotes (as `resolve` finds them)?"""
    for citation in citations:
        try:
            articles.resolve(ctx, citation.model_copy(update={"version": version}))
        except NotFound:
            return False
    return True


def _watermark_sk(item: OutboxItem) -> str:
    return f"WRITEBACK#{connector_name(item)}"


def _posted_prefix(item: OutboxItem) -> str:
    """Where the ticket keeps what each item posted on this helpdesk, one item per effect (`...#conversation:12`)."""
    return f"{_watermark_sk(item)}#POSTED#"


def _posted_writes(ctx: TenantContext, item: OutboxItem, effects: Sequence[str]) -> list[Put]:
    """What a comment item posted (effects naming one comment, part or audit), kept on its ticket so that a retry
    of another item never takes it for its own (`Writeback._send`)."""
    if item.kind not in COMMENT_KINDS:
        return []
    return [
        Put(
            pk=keys.ticket_pk(ctx.tenant_id, item.ticket_id),
            sk=_posted_prefix(item) + effect,
            data={"effect": effect, "outbox_id": item.outbox_id},
        )
        for effect in dict.fromkeys(str(e) for e in effects)
        if ":" in effect
    ]


def _summary(item: OutboxItem) -> dict[str, Any]:
    """What the audit records about an item: ids, kind, attempts and a hash of the text, never the text."""
    return {
        "outbox_id": item.outbox_id,
        "kind": item.kind,
        "provider": connector_name(item),
        "external_ticket_id": item.external_ticket_id,
        "attempts": item.attempts,
        "caused_by": item.caused_by,
        "body_sha256": sha256_hex(canonical_json(item.body)) if item.body else None,
    }


def _acknowledgement(item: OutboxItem) -> bool:
    """Escalation's "a person will follow up": the only AI effect an escalation makes (its other items are a
    person's decision). Assist still sends it to the customer; only shadow keeps it back."""
    return (item.caused_by or "").startswith("escalation:")


def assist_note(item: OutboxItem) -> OutboxItem:
    """A drafted public reply as assist mode would have made it: an internal note for agents, never public."""
    body = (
        "Deflect did not send this reply to the customer: the rollout mode for this ticket is now assist.\n\n"
        "Suggested reply:\n" + (item.body or "")
    )
    return item.model_copy(
        update={
            "kind": "internal_note",
            "body": body,
            "rollout_mode": "assist",
            # Notes are not checked for newer edits (nothing of the agent's is overwritten), so its delivery does
            # not move the ticket's watermark either.
            "expected_external_updated_at": None,
        }
    )


def held_note(item: OutboxItem, conflict: HelpdeskConflict) -> OutboxItem | None:
    """The internal note that hands a held change to a human. None for changes with nothing to hand over."""
    if item.kind == "account_action":
        return None
    delivered = bool(conflict.current.get("delivered"))
    # Too long a history to read: a human's newer edit, or an earlier attempt of this reply, may be in what was not.
    unchecked = bool(conflict.current.get("unchecked_history"))
    # Held for what it quotes, not for the ticket: the helpdesk was not looked at, so an earlier claim may have sent it.
    sources = "cited_articles" in conflict.current
    maybe_sent = unchecked or (sources and bool(conflict.current.get("earlier_dispatches")))
    held: list[str] = []
    if item.body and item.kind == "public_reply" and not delivered:
        sent = "an earlier attempt may have reached the customer: check" if maybe_sent else "not sent to the customer"
        held.append(f"the reply below ({sent})")
    if item.tags:
        held.append("tags: " + ", ".join(item.tags))
    if item.status_value:
        held.append(f"status: {item.status_value}")
    if item.custom_fields:
        held.append("fields: " + ", ".join(f"{k}={v}" for k, v in item.custom_fields.items()))
    if not held:
        return None
    if sources:
        changed = bool(conflict.current.get("cited_articles"))
        why = "a help article it quotes changed after" if changed else "the articles it quotes could not be checked since"
    elif unchecked:
        why = "its history was too long to check for changes since"
    else:
        why = "this ticket changed after"
    lines = [
        f"Deflect held back an update because {why} it was prepared ({conflict.reason}). Please review before acting.",
        "Held: " + "; ".join(held) + ".",
    ]
    if item.body and item.kind == "public_reply" and not delivered:
        lines += ["", item.body]
    return OutboxItem(
        tenant_id=item.tenant_id,
        outbox_id=f"{item.outbox_id}-held",
        ticket_id=item.ticket_id,
        provider=item.provider,
        external_ticket_id=item.external_ticket_id,
        kind="internal_note",
        body="\n".join(lines),
        caused_by=item.outbox_id,
    )
