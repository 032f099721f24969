"""What customers are answered from is on the audit record: publishing an article, changing who may read it and
withdrawing it (a DELETE, or an import row its help center no longer publishes) each append one event to the
article's own chain `knowledge-<article id>`, in the same transaction as the version, and `deflect audit verify`
checks those chains.

The real retrieval handler and S3 bulk import on moto (the world of tests/integration/test_knowledge_api.py)."""

from __future__ import annotations

import json

from deflect.domain.tenancy import TenantContext
from tests.cli_shell import deflect
from tests.integration.insight_story import seed_tenant
from tests.integration.test_knowledge_api import world  # noqa: F401  (module fixture)


def knowledge_chain(article_id):
    """What an operator passes: `deflect audit verify --tenant T --ticket knowledge-kb-refund`."""
    return f"knowledge-{article_id}"


REFUNDS = {
    "title": "Refund window",
    "body": "# Refunds\n\nRefunds are possible within 30 days of purchase.",
    "product_area": "billing",
}


def knowledge_events(world, tenant, article_id):  # noqa: F811
    _, events = world.container.audit.load(TenantContext.system(tenant), knowledge_chain(article_id))
    assert all(events), "every event of the chain reads back"
    return events


def test_publishing_hiding_and_withdrawing_an_article_is_on_a_verified_audit_chain(world, capsys):  # noqa: F811
    seed_tenant(world.container, "initech")
    path = "/v1/knowledge/articles/kb-refund"
    assert world.call("PUT", path, tenant="initech", body=REFUNDS).status == 201
    assert world.call("PUT", path, tenant="initech", body=REFUNDS).body["status"] == "unchanged"
    assert world.call("PUT", path, tenant="initech", body={**REFUNDS, "visibility": "internal"}).status == 200
    assert world.call("DELETE", path, tenant="initech").status in (200, 204)

    published, hidden, withdrawn = knowledge_events(world, "initech", "kb-refund")  # "unchanged" is no change
    assert [e.type for e in (published, hidden, withdrawn)] == [
        "knowledge.published",
        "knowledge.updated",
        "knowledge.withdrawn",
    ]
    assert {e.actor for e in (published, hidden, withdrawn)} == {"agent:initech-user"}
    assert [e.payload["version"] for e in (published, hidden, withdrawn)] == [1, 2, 3]

    ctx = TenantContext.system("initech")
    v1 = world.container.knowledge_ingestion.articles.read(ctx, "kb-refund", 1)
    assert published.payload["article_id"] == "kb-refund" and published.payload["visibility"] == "public"
    assert [ref.key for ref in published.evidence] == [v1.body_ref.key]  # the locked body it published
    # made internal: customers stop getting it, and the event says so with the content's hash
    assert hidden.payload["fields"] == ["visibility"]
    assert hidden.payload["values"]["visibility"] == {"old": "public", "new": "internal"}
    assert hidden.payload["previous_sha256"] == published.payload["content_sha256"]
    assert hidden.payload["content_sha256"] != published.payload["content_sha256"]
    assert (withdrawn.payload["reason"], withdrawn.payload["previous_version"]) == ("deleted", 2)

    code, out, err = deflect(capsys, "audit", "verify", "--tenant", "initech")
    assert code == 0, err
    reports = [json.loads(line) for line in out.splitlines()]
    [chain] = [r for r in reports if r.get("ticket") == knowledge_chain("kb-refund")]
    assert (chain["events"], chain["ok"]) == (3, True)
    one = knowledge_chain("kb-refund")
    code, out, err = deflect(capsys, "audit", "verify", "--tenant", "initech", "--ticket", one)
    assert code == 0 and json.loads(out.splitlines()[0])["events"] == 3, err


def test_a_bulk_import_appends_one_event_per_article_change_and_withdraws_unpublished_articles(world):  # noqa: F811
    seed_tenant(world.container, "hooli")
    bucket = world.resources.buckets["KnowledgeImportBucket"]
    key = "tenant=hooli/exports/help.jsonl"
    sections = "\n\n".join(
        f"## Step {n}\n\n" + f"Open settings page {n} and confirm the change. " * 40 for n in range(6)
    )
    sso = {"id": "sso", "title": "Set up SSO", "body": f"# SSO\n\n{sections}"}
    invoices = {
        "id": "invoices",
        "title": "Invoices",
        "body": "Download invoices as PDF.",
        "product_area": "billing",
    }

    def run(*rows):
        body = "\n".join(json.dumps(r) for r in rows).encode()
        world.session.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
        [report] = world.s3_event(bucket, key, len(body))["imports"]
        return report["summary"]

    assert run(sso, invoices)["added"] == 2
    assert run(sso, invoices)["unchanged"] == 2
    run(sso, {**invoices, "draft": True})

    [sso_published] = knowledge_events(world, "hooli", "sso")
    invoices_published, invoices_withdrawn = knowledge_events(world, "hooli", "invoices")
    events = [sso_published, invoices_published, invoices_withdrawn]
    assert [(e.type, e.payload["article_id"]) for e in events] == [
        ("knowledge.published", "sso"),
        ("knowledge.published", "invoices"),
        ("knowledge.withdrawn", "invoices"),
    ]
    assert sso_published.payload["chunks"] > 1  # one event per article, however many chunks it was indexed as
    assert {e.actor for e in events} == {f"s3-import:{bucket}"}
    assert invoices_published.payload["source"] == f"{key}:2"  # the row it came from
    assert "draft" in invoices_withdrawn.payload["reason"]
    assert invoices_withdrawn.payload["source"] == f"{key}:2"
    hooli = TenantContext.system("hooli")
    # What `deflect audit verify --tenant hooli` checks: every article's chain.
    reports = {r.ticket_id: r for r in world.container.audit.verify_tenant(hooli)}
    assert all(reports[knowledge_chain(a)].ok for a in ("sso", "invoices"))
