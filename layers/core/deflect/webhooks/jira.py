"""Jira Service Management: admin webhooks for `jira:issue_created` and `comment_created`.

Descriptions and comment bodies are wiki-markup strings (REST v2 shape) or Atlassian Document Format objects;
both become plain text. Internal comments (`jsdPublic: false`) and comments by licensed agents are ignored.
Delivery id: the `X-Atlassian-Webhook-Identifier` header (unchanged across retries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from deflect.webhooks import common
from deflect.webhooks.inbound import (
    Ignored,
    InboundMessage,
    LooseId,
    LooseText,
    LooseTime,
    ParseResult,
    ProviderModel,
    Requester,
)

IDENTIFIER_HEADER = "x-atlassian-webhook-identifier"
MAX_ADF_NODES = 20_000
_ADF_BLOCKS = {"paragraph", "heading", "blockquote", "listItem", "codeBlock", "rule", "tableRow", "panel"}


class User(ProviderModel):
    accountId: LooseText = None
    emailAddress: LooseText = None
    displayName: LooseText = None
    accountType: LooseText = None
    locale: LooseText = None


class Attachment(ProviderModel):
    filename: LooseText = None
    content: LooseText = None
    mimeType: LooseText = None
    size: int | None = None


class Named(ProviderModel):
    name: LooseText = None
    key: LooseText = None


class IssueFields(ProviderModel):
    model_config = ConfigDict(extra="allow")  # customfield_* arrive as extra keys

    summary: LooseText = None
    description: str | dict[str, Any] | None = None
    reporter: User | None = None
    creator: User | None = None
    created: LooseTime = None
    updated: LooseTime = None
    labels: list[str] = Field(default_factory=list)
    attachment: list[Attachment] = Field(default_factory=list)
    priority: Named | None = None
    issuetype: Named | None = None
    project: Named | None = None
    status: Named | None = None


class Issue(ProviderModel):
    id: LooseId = Field(min_length=1)
    key: LooseText = None
    fields: IssueFields = Field(default_factory=IssueFields)


class Comment(ProviderModel):
    id: LooseId | None = None
    body: str | dict[str, Any] | None = None
    author: User = Field(default_factory=User)
    created: LooseTime = None
    updated: LooseTime = None
    jsdPublic: bool | None = None


class Webhook(ProviderModel):
    timestamp: LooseTime = None
    webhookEvent: str
    issue: Issue | None = None
    comment: Comment | None = None
    user: User | None = None


def delivery_id(headers: Mapping[str, str], payload: Mapping[str, Any], body: bytes) -> str:
    return headers.get(IDENTIFIER_HEADER) or common.body_fingerprint(body)


def adf_to_text(node: Any) -> str:
    """Text of an Atlassian Document Format tree, iteratively (no recursion limit to hit) and bounded."""
    if isinstance(node, str):
        return node
    out: list[str] = []
    stack: list[Any] = [node]
    visited = 0
    while stack and visited < MAX_ADF_NODES:
        current = stack.pop()
        visited += 1
        if isinstance(current, str):  # a marker pushed below
            out.append(current)
            continue
        if not isinstance(current, Mapping):
            continue
        kind = current.get("type") if isinstance(current.get("type"), str) else None
        if kind == "text" and isinstance(current.get("text"), str):
            out.append(current["text"])
        elif kind == "hardBreak":
            out.append("\n")
        elif kind in {"mention", "emoji"} and isinstance(current.get("attrs"), Mapping):
            out.append(str(current["attrs"].get("text") or ""))
        children = current.get("content")
        if kind in _ADF_BLOCKS:
            stack.append("\n")
        if isinstance(children, list):
            stack.extend(reversed(children))
    return "".join(out)


def _requester(user: User | None) -> Requester:
    user = user or User()
    return Requester(
        email=user.emailAddress or None, external_id=user.accountId or None, name=user.displayName or None
    )


def _custom_fields(fields: IssueFields) -> dict[str, Any]:
    extra = {k: v for k, v in (fields.model_extra or {}).items() if k.startswith("customfield_")}
    named = {
        "priority": fields.priority.name if fields.priority else None,
        "issue_type": fields.issuetype.name if fields.issuetype else None,
        "project": fields.project.key if fields.project else None,
    }
    return common.custom_fields(extra) | common.custom_fields(named)


def _not_a_customer(author: User, reporter: User | None) -> str | None:
    """Why a public comment is not the customer's, or None when it may be. The reporter is the customer whatever
    their account (in an internal service desk, employees ask with Atlassian accounts); an `app` account is
    automation; another Atlassian account named beside the reporter is an agent."""
    if reporter and reporter.accountId and author.accountId == reporter.accountId:
        return None
    kind = (author.accountType or "").lower()
    if kind == "app":
        return "comment written by an app or automation"
    if kind == "atlassian" and reporter and reporter.accountId:
        return "comment written by an agent"
    return None


def parse(tenant_id: str, payload: Mapping[str, Any]) -> ParseResult:
    hook = Webhook.model_validate(payload)
    event = hook.webhookEvent
    if event not in {"jira:issue_created", "comment_created"}:
        return Ignored(provider="jira", event=event[:100], reason="event type not handled")
    if hook.issue is None:
        return Ignored(provider="jira", event=event, reason="no issue in the payload")
    issue, fields = hook.issue, hook.issue.fields
    if event == "jira:issue_created":
        requester = _requester(fields.reporter or fields.creator)
        body, message_id, created = adf_to_text(fields.description or ""), "description", True
        files, requester_only = fields.attachment, False
    else:
        comment = hook.comment
        if comment is None:
            return Ignored(provider="jira", event=event, reason="comment event without a comment")
        if comment.jsdPublic is False:
            return Ignored(provider="jira", event=event, reason="internal comment")
        not_customer = _not_a_customer(comment.author, fields.reporter)
        if not_customer:
            return Ignored(provider="jira", event=event, reason=not_customer)
        requester = _requester(comment.author)
        body, message_id, created, files = adf_to_text(comment.body or ""), comment.id, False, []
        # An Atlassian account with no reporter to compare: an agent, or an employee asking (intake decides).
        requester_only = (comment.author.accountType or "").lower() == "atlassian" and not (
            fields.reporter and fields.reporter.accountId
        )
    return InboundMessage(
        tenant_id=tenant_id,
        provider="jira",
        event=event,
        is_new_ticket=created,
        external_ticket_id=issue.id,
        external_message_id=message_id,
        requester=requester,
        subject=common.subject_text(fields.summary),
        body_text=common.body_text(body),
        attachments=common.attachments(
            common.attachment(a.filename, a.content, a.mimeType, a.size) for a in files
        ),
        channel="portal",
        locale=(fields.reporter.locale if fields.reporter else None) or None,
        created_at=fields.created,
        updated_at=fields.updated or hook.timestamp,
        custom_fields=_custom_fields(fields) | common.custom_fields({"issue_key": issue.key}),
        tags=common.split_tags(fields.labels),
        requester_only=requester_only,
    )
