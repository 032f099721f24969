"""Diagnostics: what the customer already gave, a clear request for the rest, and tools scoped per tenant and role."""

import json

import pytest

from deflect.domain.errors import Forbidden, NotFound
from deflect.domain.models import AttachmentRef, DiagnosticsChecklist, TenantConfig
from deflect.domain.tenancy import TenantContext
from deflect.embedded.memory_store import MemoryEvidenceStore
from deflect.triage import diagnostics
from deflect.triage.diagnostics import DiagnosticToolRegistry, RecentErrorsTool, ServiceStatusTool, ToolGrant

MESSAGE = (
    "The desktop app crashes on start. App version 4.2.1 on macOS 14.4, error SB-1042. "
    "Request ID: 7f1c2a9e-5b3d-4c8e-9a1f-2b3c4d5e6f70. Device: Pixel 8"
)


def test_provided_diagnostics_are_extracted_from_the_message_and_attachments():
    found = diagnostics.extract(
        ["app_version", "os", "error_code", "request_id", "logs", "screenshot", "device"],
        MESSAGE,
        [AttachmentRef(name="sync.log"), AttachmentRef(name="screen.png", content_type="image/png")],
    )
    assert found == {
        "app_version": "4.2.1",
        "os": "macOS 14.4",
        "error_code": "SB-1042",
        "request_id": "7f1c2a9e-5b3d-4c8e-9a1f-2b3c4d5e6f70",
        "logs": "attachment:sync.log",
        "screenshot": "attachment:screen.png",
        "device": "Pixel 8",
    }


def test_nothing_is_invented_when_the_message_gives_nothing():
    assert diagnostics.extract(["app_version", "os", "run_id", "logs"], "It doesn't work, please help") == {}


def test_inline_log_lines_count_as_logs():
    text = "Here is what I see:\n2024-05-02 10:01:22 ERROR sync failed: timeout\n2024-05-02 10:01:23 INFO retrying"
    assert diagnostics.extract(["logs"], text) == {"logs": "inline"}


def test_checklists_come_from_tenant_config_and_names_are_normalised():
    config = TenantConfig(
        tenant_id="acme",
        display_name="Acme",
        diagnostics=[
            DiagnosticsChecklist(product_area="mobile", required=["App Version", "Operating System", "logs"])
        ],
    )
    assert diagnostics.checklist(config, "mobile") == ["app_version", "os", "logs"]
    assert diagnostics.checklist(config, "billing") == []


def test_the_request_names_each_missing_item_clearly():
    text = diagnostics.request_text(["app_version", "run_id", "browser_extension"], product_area="mobile")
    lines = text.splitlines()
    assert lines[0] == "To look into this (mobile), we need a few details:"
    assert lines[1].startswith("- the app version you are using")
    assert lines[2].startswith("- the run ID of the failed run")
    assert lines[3] == "- browser extension"
    assert diagnostics.request_text([]) == ""


class Telemetry:
    def recent_errors(self, ctx, account_id, *, limit=20):
        return [{"code": "SB-1042", "at": "2024-05-02T10:00:00Z", "tenant": ctx.tenant_id}][:limit]

    def service_status(self, ctx):
        return {
            "indicator": "minor",
            "degraded_components": [{"name": "API", "status": "degraded_performance"}],
        }


@pytest.fixture
def registry():
    return DiagnosticToolRegistry([RecentErrorsTool(Telemetry()), ServiceStatusTool(Telemetry())])


GRANTS = [
    ToolGrant("recent_errors", frozenset({"service", "agent"}), frozenset({"troubleshooting"})),
    ToolGrant("service_status", frozenset({"supervisor"})),
]


def test_tools_run_only_where_the_tenant_granted_them_to_one_of_the_callers_roles(registry):
    agent = TenantContext(tenant_id="acme", actor="agent:kim", roles=frozenset({"agent"}), via="jwt")
    assert registry.allowed(GRANTS, agent.roles, "troubleshooting") == ["recent_errors"]
    assert registry.allowed(GRANTS, agent.roles, "billing") == []
    with pytest.raises(Forbidden):
        registry.run(
            agent, "service_status", {"ticket_id": "t1"}, grants=GRANTS, product_area="troubleshooting"
        )
    with pytest.raises(Forbidden):
        registry.run(agent, "recent_errors", {"ticket_id": "t1"}, grants=[], product_area="troubleshooting")
    with pytest.raises(NotFound):
        registry.run(agent, "drop_tables", {}, grants=GRANTS, product_area="troubleshooting")


def test_tool_results_are_stored_as_evidence_of_the_ticket(registry):
    evidence = MemoryEvidenceStore()
    worker = TenantContext.system("acme", actor="triage")
    result = registry.run(
        worker,
        "recent_errors",
        {"ticket_id": "t1", "account_id": "acct-9"},
        grants=GRANTS,
        product_area="troubleshooting",
        evidence=evidence,
    )
    assert result.ok and result.output["errors"][0]["code"] == "SB-1042"
    stored = json.loads(evidence.read(worker, result.evidence))
    assert stored["tool"] == "recent_errors" and stored["actor"] == "triage"
    assert result.evidence.key.startswith("tenant=acme/tickets/t1/")
