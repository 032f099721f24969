"""A ticket's history survives the loss of every mutable record: audit + evidence are enough."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlparse

import pytest

from deflect.domain import keys
from deflect.domain.errors import NotFound
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, Put
from tests.integration.insight_story import escalated_ticket, seed_tenant


@pytest.fixture
def story(moto_stack):
    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    return container, escalated_ticket(container, ctx)


def delete_partition(container, ctx, pk: str) -> int:
    items = container.store.query(ctx, pk)
    for item in items:
        container.store.delete(ctx, Delete(pk=item.pk, sk=item.sk))
    return len(items)


def test_full_history_is_rebuilt_from_audit_and_evidence_alone(story):
    container, s = story
    ctx = s.ctx
    deleted = sum(
        delete_partition(container, ctx, pk)
        for pk in (
            keys.ticket_pk("acme", s.ticket_id),
            keys.task_pk("acme", s.task_id),
            keys.outbox_pk("acme", s.outbox_id),
        )
    )
    assert deleted >= 5  # meta, message, decision, task, outbox
    assert container.store.get(ctx, keys.ticket_pk("acme", s.ticket_id), "META") is None

    history = container.timeline.rebuild_from_audit(ctx, s.ticket_id)

    assert history.chain_ok
    assert history.reached == ["received", "triaged", "escalated", "decided", "written_back"]
    assert [st.type for st in history.stages][:2] == ["message.received", "decision.made"]
    assert (history.provider, history.customer_id, history.channel) == ("zendesk", "cus_1", "email")
    assert history.messages[0]["message_id"] == "msg_1"
    assert history.messages[0]["evidence"][0] == {
        "kind": "inbound_request",
        "sha256": history.messages[0]["evidence"][0]["sha256"],
        "sealed": True,
        "readable": True,
    }
    # the whole decision comes back from its evidence, inputs included
    decision = history.decisions[0]
    assert decision == s.decision
    assert decision.classification.intent == "refund_request"
    assert [(a.article_id, a.version, a.score) for a in decision.retrieved] == [
        ("kb-refunds", 4, 0.82),
        ("kb-export", 2, 0.41),
    ]
    assert (decision.model_id, decision.prompt_sha256, decision.policy_version) == (
        "embedded-extractive",
        "ab" * 32,
        3,
    )
    assert history.escalation["task_id"] == s.task_id and history.escalation["queue"] == "billing"
    assert history.agent_decisions[0]["outcome"] == "approve"
    assert history.agent_decisions[0]["actor"] == "agent:u-approver"
    assert history.writebacks[0]["outbox_id"] == s.outbox_id
    assert history.writebacks[0]["type"] == "writeback.delivered"
    assert history.status == "resolved"


def test_timeline_shows_inputs_outputs_evidence_links_and_chain_status(story):
    container, s = story
    timeline = container.timeline.timeline(s.ctx, s.ticket_id)

    assert timeline.chain.ok and timeline.chain.events == len(s.events)
    assert [e.seq for e in timeline.events] == list(range(len(s.events)))
    assert timeline.events[0].actor == "webhook:zendesk" and timeline.events[0].stage == "received"
    made = next(e for e in timeline.events if e.type == "decision.made")
    assert made.inputs.classification["intent"] == "refund_request"
    assert made.inputs.retrieved[0] == {"article_id": "kb-refunds", "version": 4, "score": 0.82}
    assert (made.inputs.model_id, made.inputs.prompt_sha256, made.inputs.policy_version) == (
        "embedded-extractive",
        "ab" * 32,
        3,
    )
    assert made.outputs["outcome"] == "escalate"
    # personal evidence is sealed: no link that would hand out ciphertext
    assert made.evidence[0].sealed and made.evidence[0].url is None
    decided = next(e for e in timeline.events if e.type == "task.decided")
    assert decided.actor == "agent:u-approver" and decided.outputs["outcome"] == "approve"


def test_unsealed_evidence_gets_a_short_lived_link(moto_stack):
    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    ref = container.evidence.put_evidence(ctx, "tkt_9", b'{"tool":"status","ok":true}', "diagnostics")
    container.audit.append(ctx, "tkt_9", "diagnostics.collected", {"names": ["status"]}, evidence=[ref])
    link = container.timeline.timeline(ctx, "tkt_9").events[0].evidence[0]
    assert not link.sealed and link.expires_in_s == 300
    assert "/tenant%3Dacme/tickets/tkt_9/evidence/" in link.url
    query = parse_qs(urlparse(link.url).query)
    expires_at = (
        int(query["Expires"][0]) if "Expires" in query else time.time() + int(query["X-Amz-Expires"][0])
    )
    assert expires_at - time.time() <= 300


def test_a_changed_audit_record_shows_as_a_broken_chain(story):
    container, s = story
    ctx = s.ctx
    pk = keys.audit_pk("acme", s.ticket_id)
    item = container.store.get(ctx, pk, "SEQ#0000000002")
    container.store.put(ctx, Put(pk=pk, sk=item.sk, data={**item.data, "hash": "0" * 64}, expect="any"))
    timeline = container.timeline.timeline(ctx, s.ticket_id)
    assert not timeline.chain.ok and timeline.chain.first_broken_seq == 2


def test_another_tenants_ticket_is_not_found(story):
    container, s = story
    seed_tenant(container, "acme-corp")
    with pytest.raises(NotFound):
        container.timeline.timeline(TenantContext.system("acme-corp"), s.ticket_id)
    with pytest.raises(NotFound):
        container.timeline.rebuild_from_audit(TenantContext.system("acme-corp"), s.ticket_id)


def test_report_and_usage_commands(story, tmp_path, capsys):
    from deflect.cli import main as cli

    container, _ = story
    container.usage.flush()
    out = tmp_path / "report.html"
    assert cli(["report", "--tenant", "acme", "--out", str(out), "--rebuild-facts"]) == 0
    page = out.read_text()
    assert "Deflect report — acme" in page and page.count("data:image/png;base64,") >= 4
    assert "Escalation quality" in page and "Knowledge gaps" in page
    capsys.readouterr()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert cli(["usage", "--tenant", "acme", "--day", today]) == 0
    day = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert day["counters"]["tickets"] == 1 and day["counters"]["s3_put"] > 0 and day["cost"]["total"] > 0


def test_knowledge_gaps_from_search_join_those_from_decisions(moto_stack):
    from datetime import UTC, datetime

    from deflect.knowledge.models import KnowledgeGap
    from deflect.knowledge.search import KnowledgeGaps

    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    gaps = KnowledgeGaps(container.store)
    now = datetime.now(UTC)
    for n, (query, score) in enumerate(
        [("How do I export to  Parquet?", 0.2), ("how do i export to parquet?", 0.0)]
    ):
        gap = KnowledgeGap(
            tenant_id="acme",
            gap_id=f"g{n}",
            product_area="data",
            query_redacted=query,
            best_score=score,
            at=now,
        )
        container.store.put(ctx, gaps.write(gap))
    summary = container.analytics.summary(ctx, now.date(), now.date())
    found = [(g.product_area, g.question, g.count, g.unanswered) for g in summary.knowledge_gaps]
    assert found == [("data", "how do i export to parquet?", 2, 1)]
