"""Stored and exchanged records. Every stored record carries `schema_version` so readers can migrate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from deflect.domain.tenancy import TenantId


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


class Record(BaseModel):
    """Base of stored records: strict about unknown fields so typos fail loudly."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = 1


class Versioned(Record):
    """Records updated with optimistic locking."""

    version: int = 0


Provider = Literal["zendesk", "intercom", "freshdesk", "jira", "generic", "api"]
RolloutMode = Literal["shadow", "assist", "auto"]
Severity = Literal["P1", "P2", "P3", "P4"]
# review_expired: an escalation's human review got no decision in any queue (escalation/steps.py).
TicketStatus = Literal[
    "new", "triaging", "awaiting_customer", "deflected", "escalated", "review_expired", "resolved", "closed"
]
DecisionOutcome = Literal["deflect", "ask_diagnostics", "escalate"]
TaskStatus = Literal["open", "claimed", "decided", "expired", "reassigned", "failed"]
AgentOutcome = Literal["approve", "edit", "reject", "reassign"]
OutboxKind = Literal["public_reply", "internal_note", "tags", "status", "custom_fields", "account_action"]
OutboxStatus = Literal["pending", "dispatching", "done", "conflict", "failed", "dead"]
# What changes a customer's account: always a person's decision.
AccountAction = Literal[
    "refund",
    "change_plan",
    "cancel_subscription",
    "change_entitlement",
    "delete_account",
    "reset_mfa",
    "change_email",
]


class DiagnosticsChecklist(BaseModel):
    product_area: str
    required: list[str] = Field(default_factory=list)


# A confidence the policy compares with model scores (draft confidence, intent confidence): all lie in [0, 1].
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
# What the range checks of a policy report; stored policies may hold values from before the checks (see below).
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


# ISO 4217's active currency codes (List One, 2025): money a refund can be made in. Left out: precious metals (XAU,
# XAG, XPD, XPT), bond and accounting units (XBA-XBD, XDR, XSU, XUA), fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN,
# UYI, UYW), the test and "no currency" codes (XTS, XXX), and withdrawn codes (HRK, SLL, VEF, ZWL...).
_ISO_4217_ACTIVE = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF
CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG
HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
ISO_4217_CURRENCIES: frozenset[str] = frozenset(_ISO_4217_ACTIVE.split())
# What the ISO check reports (a stored policy reads its error type, see TenantConfig._stored_policy).
CURRENCY_NOT_ISO = "currency_not_iso_4217"


def _iso_4217(code: str) -> str:
    if code not in ISO_4217_CURRENCIES:
        # "BTC", "XAU" or a typo such as "EUD": no CRM refunds it, and no limit can be compared with it
        raise PydanticCustomError(
            CURRENCY_NOT_ISO, "{code} is not an ISO 4217 currency code (e.g. EUR, USD, GBP)", {"code": code}
        )
    return code


# An ISO 4217 currency code, upper-cased ("eur" is EUR); "EURO", "€", "", "BTC" and "XAU" are refused.
# (validators run outside-in for Before, inside-out for After: _upper, then the pattern, then _iso_4217)
CurrencyCode = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_iso_4217), BeforeValidator(_upper)
]


class DecisionPolicy(BaseModel):
    """Tenant policy. The model proposes; this decides.

    Range-checked wherever a policy is set (the admin API's PolicyUpdate is a subclass, `deflect policy set` goes
    through it, code builds DecisionPolicy). A stored policy is read back by TenantConfig, which tolerates values
    saved before these bounds existed."""

    version: int = Field(default=1, ge=1)
    # a grounded draft is sent when its confidence reaches this (also the knowledge-gap score line)
    answer_threshold: Confidence = 0.55
    # below this intent confidence a ticket escalates
    classification_threshold: Confidence = 0.5
    always_escalate_flags: list[str] = Field(
        default_factory=lambda: ["billing", "refund", "security", "legal", "privacy", "account_change"]
    )
    approver_required_actions: list[str] = Field(default_factory=lambda: list(get_args(AccountAction)))
    # an action amount above this needs two approvers; 0 = every amount does; a refund without an amount always does
    two_person_amount_threshold: Decimal = Field(default=Decimal("500"), ge=0)
    # the threshold's currency: an amount in any other needs two approvers. None: compared in the amount's own
    # currency (500 EUR and 500 KWD alike), as before this setting existed, except that an edit changing the
    # action's currency then needs two approvers (escalation.policy.needs_two_people)
    two_person_currency: CurrencyCode | None = None
    rollout_default: RolloutMode = "assist"
    rollout_by_intent: dict[str, RolloutMode] = Field(default_factory=dict)


class SlaTier(BaseModel):
    name: str
    first_response_minutes: int
    review_timeout_seconds: int
    # Problems from accounts on this tier rank one severity level higher (an outage: P1). Unset: only the tier
    # named "enterprise" does, as before tiers could say so.
    raises_severity: bool | None = None

    @property
    def priority(self) -> bool:
        return self.raises_severity if self.raises_severity is not None else self.name == "enterprise"


# Helpdesks a tenant may trust for requester emails. Not Intercom: it tells its requesters apart itself (a `user` is
# vouched already; a lead is an anonymous visitor, and so may be a `contact`, whose role the payload does not give).
EMAIL_VOUCHING_PROVIDERS: tuple[str, ...] = ("zendesk", "freshdesk", "jira", "generic")


def _vouching_providers(value: list[str]) -> list[str]:
    refused = sorted(set(value) - set(EMAIL_VOUCHING_PROVIDERS))
    if refused:
        raise ValueError(
            f"cannot vouch for requester emails from {', '.join(refused)}; choose from "
            f"{', '.join(EMAIL_VOUCHING_PROVIDERS)} (Intercom users are vouched already, its leads never are)"
        )
    return list(dict.fromkeys(value))


VouchingProviders = Annotated[list[Provider], AfterValidator(_vouching_providers)]


class TenantConfig(Versioned):
    tenant_id: TenantId
    display_name: str
    status: Literal["active", "suspended"] = "active"
    providers: list[Provider] = Field(default_factory=list)
    # Helpdesks whose requester emails the tenant trusts as the requester's own (its Zendesk takes mail only from
    # verified senders, its Jira portal requires login): such an email names the CRM-verified customer who has it.
    # Empty by default: a typed email may be anyone's, and must not take that customer's plan, SLA and articles.
    email_vouching_providers: VouchingProviders = Field(default_factory=list)
    freshdesk_secret_header: str = "X-Deflect-Freshdesk-Secret"
    default_locale: str = "en"
    escalation_queues: list[str] = Field(default_factory=lambda: ["tier1", "tier2", "supervisor"])
    max_reassign_hops: int = 2
    sla_tiers: dict[str, SlaTier] = Field(
        default_factory=lambda: {
            "standard": SlaTier(name="standard", first_response_minutes=1440, review_timeout_seconds=86400),
            "premium": SlaTier(name="premium", first_response_minutes=240, review_timeout_seconds=14400),
            "enterprise": SlaTier(name="enterprise", first_response_minutes=60, review_timeout_seconds=3600),
        }
    )
    diagnostics: list[DiagnosticsChecklist] = Field(default_factory=list)

    def priority_tiers(self) -> frozenset[str]:
        """SLA tiers whose problems rank one severity level higher."""
        return frozenset(key for key, tier in self.sla_tiers.items() if tier.priority)

    policy: DecisionPolicy = Field(default_factory=DecisionPolicy)
    retention_days: int = 365
    daily_budget_usd: Decimal | None = None
    requests_per_minute: int | None = None
    updated_by: str = "system"
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("policy", mode="wrap")
    @classmethod
    def _stored_policy(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> DecisionPolicy:
        """A policy stored before DecisionPolicy had bounds (PUT config accepted e.g. answer_threshold 5) loads as
        stored, so triage keeps deciding as that tenant configured until an admin sets the policy again; setting it
        (PolicyUpdate, DecisionPolicy) is range-checked. Only range errors (and a limit currency outside ISO 4217) are
        tolerated, never a wrong type."""
        try:
            return handler(value)
        except ValidationError as error:
            found = error.errors()
            if not isinstance(value, dict) or any(
                e["type"] not in (*_RANGE_ERRORS, CURRENCY_NOT_ISO) or len(e["loc"]) != 1 for e in found
            ):
                raise
            out_of_range = {str(e["loc"][0]) for e in found}
            not_iso = {str(e["loc"][0]) for e in found if e["type"] == CURRENCY_NOT_ISO}
            policy = handler({k: v for k, v in value.items() if k not in out_of_range})
            fields = DecisionPolicy.model_fields
            # the field's type without its bounds: "-5" is still read as Decimal("-5"), 5 as 5.0
            as_stored = {
                k: TypeAdapter(fields[k].annotation).validate_python(value[k]) for k in out_of_range - not_iso
            }
            # a limit currency stored before codes were checked against ISO 4217 ("EUD"): kept as stored; no amount
            # is in it, so every amount needs two approvers until an admin sets the policy again
            as_stored.update({k: _upper(value[k]) for k in not_iso})
            return policy.model_copy(update=as_stored)


class Entitlement(Record):
    tenant_id: TenantId
    customer_id: str
    product: str
    level: str = "standard"
    active: bool = True


class Account(Versioned):
    tenant_id: TenantId
    account_id: str
    name: str = ""
    plan: str = "free"
    sla_tier: str = "standard"
    owner: str | None = None
    entitlements: list[str] = Field(default_factory=list)
    updated_at: datetime = Field(default_factory=utcnow)


class Customer(Versioned):
    tenant_id: TenantId
    customer_id: str
    email: str | None = None
    external_ids: dict[str, str] = Field(default_factory=dict)
    name: str | None = None
    account_id: str | None = None
    verified: bool = False
    updated_at: datetime = Field(default_factory=utcnow)


class AttachmentRead(BaseModel):
    """What became of reading an attachment for diagnostics (ports.AttachmentReader), recorded with the decision:
    a log that could not be downloaded must not look like a message without a log."""

    outcome: Literal["read", "failed", "skipped"]
    # failed: "timeout", "connection", "http_<status>", "no_text"; skipped: "type", "size", "link", "read_limit".
    reason: str | None = None
    text: str | None = Field(default=None, exclude=True, repr=False)


class AttachmentRef(BaseModel):
    name: str
    url: str | None = None
    content_type: str | None = None
    size: int | None = None
    # What triage read of a text attachment, for its diagnostics only: never stored or sent anywhere.
    text: str | None = Field(default=None, exclude=True, repr=False)
    # Whether triage read it, and why not (never stored with the message; the decision evidence records it).
    read: AttachmentRead | None = Field(default=None, exclude=True, repr=False)


class EvidenceRef(BaseModel):
    """Pointer to a locked, content-addressed evidence object."""

    key: str
    sha256: str
    version_id: str | None = None
    kind: str = "evidence"


class Message(Record):
    tenant_id: TenantId
    ticket_id: str
    message_id: str
    author: Literal["customer", "agent", "ai", "system"] = "customer"
    body_redacted: str
    attachments: list[AttachmentRef] = Field(default_factory=list)
    evidence: EvidenceRef | None = None
    received_at: datetime = Field(default_factory=utcnow)
    delivery_id: str | None = None


class Ticket(Versioned):
    tenant_id: TenantId
    ticket_id: str
    provider: Provider
    external_id: str
    subject_redacted: str = ""
    status: TicketStatus = "new"
    customer_id: str | None = None
    account_id: str | None = None
    plan: str | None = None
    entitlements: list[str] = Field(default_factory=list)
    sla_tier: str = "standard"
    locale: str = "en"
    channel: str = "web"
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    external_updated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


ActionKind = Literal[AccountAction, "none"]


class RequestedAction(BaseModel):
    """A structured account-changing action the customer asked for. Never executed without a human.

    Deliberately unbounded: this is also the stored and exchanged shape (decisions, tasks, task decisions, outbox
    items, in-flight workflow state), and records written before ActionInput existed must keep loading. The bounds
    apply where an action is made: ActionInput at the agent API, bounded_amount() in triage. Approving without an
    edit commits the action triage proposed, so every action a person approves went through one of the two."""

    kind: ActionKind = "none"
    amount: Decimal | None = None
    currency: str | None = None
    target: str | None = None


# Money an action may move: positive, at most 4 decimal places (enough for every ISO 4217 minor unit, 0-3, and
# the 4 some billing systems keep), and below a ceiling no support ticket reaches.
MAX_ACTION_AMOUNT = Decimal("1000000000")
ACTION_AMOUNT_PLACES = 4


def _fixed_point(value: Decimal) -> Decimal:
    # "1E+2" is a valid decimal; a CRM receiving the approved action gets "100"
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


ActionAmount = Annotated[
    Decimal,
    Field(gt=0, le=MAX_ACTION_AMOUNT, decimal_places=ACTION_AMOUNT_PLACES, allow_inf_nan=False),
    AfterValidator(_fixed_point),
]


class ActionInput(BaseModel):
    """A RequestedAction as a person submits it (the agent decision API): amount and currency bounded, unknown
    fields refused so a misspelt "amount" cannot approve a refund without one. Convert with `action()`."""

    model_config = ConfigDict(extra="forbid")

    kind: ActionKind = "none"
    amount: ActionAmount | None = None
    currency: CurrencyCode | None = None
    target: str | None = None

    def action(self) -> RequestedAction:
        return RequestedAction(**self.model_dump())


def bounded_amount(amount: Decimal | None, currency: str | None) -> tuple[Decimal | None, str | None]:
    """The amount and currency if ActionInput would accept them, else (None, None): for actions read from customer
    text, where an impossible amount ("refund me -5 USD") is left for the person to read, never an error."""
    try:
        checked = ActionInput(amount=amount, currency=currency)
    except ValidationError:
        return None, None
    return checked.amount, checked.currency


class Classification(BaseModel):
    intent: str
    intent_confidence: float
    out_of_scope: bool = False
    product_area: str = "general"
    severity: Severity = "P3"
    sentiment: Literal["negative", "neutral", "positive"] = "neutral"
    language: str = "en"
    sensitive_flags: list[str] = Field(default_factory=list)
    requested_action: RequestedAction = Field(default_factory=RequestedAction)
    wants_human: bool = False
    repeat_contact: bool = False


class ArticleRef(BaseModel):
    article_id: str
    version: int
    title: str = ""
    chunk_id: str | None = None
    heading_path: list[str] = Field(default_factory=list)
    score: float = 0.0
    stale: bool = False
    url: str | None = None


class Citation(BaseModel):
    article_id: str
    version: int
    quote: str


class Draft(BaseModel):
    text: str
    citations: list[Citation] = Field(default_factory=list)
    confidence: float = 0.0
    model_id: str = ""
    prompt_sha256: str | None = None
    grounded: bool = False
    # How many things the question names that no retrieved passage mentions (each lowers the confidence).
    unmentioned_names: int = 0


class Decision(Record):
    tenant_id: TenantId
    ticket_id: str
    decision_id: str = Field(default_factory=lambda: new_id("dec_"))
    outcome: DecisionOutcome
    reasons: list[str] = Field(default_factory=list)
    classification: Classification | None = None
    retrieved: list[ArticleRef] = Field(default_factory=list)
    draft: Draft | None = None
    missing_diagnostics: list[str] = Field(default_factory=list)
    # What the customer was sent, exactly (auto mode: the answer and/or the diagnostics request); None otherwise.
    customer_reply: str | None = None
    model_id: str = ""
    prompt_sha256: str | None = None
    policy_version: int = 1
    rollout_mode: RolloutMode = "assist"
    evidence: EvidenceRef | None = None
    decided_at: datetime = Field(default_factory=utcnow)
    # The customer message this decision is about (decisions stored before this field have none).
    message_id: str | None = None


class HumanTask(Versioned):
    tenant_id: TenantId
    task_id: str = Field(default_factory=lambda: new_id("task_"))
    ticket_id: str
    queue: str
    required_role: Literal["agent", "approver", "supervisor"] = "agent"
    assignee: str | None = None
    status: TaskStatus = "open"
    due_at: datetime
    hops: int = 0
    approvals: list[str] = Field(default_factory=list)
    approvals_required: int = 1
    proposed_action: RequestedAction = Field(default_factory=RequestedAction)
    proposed_reply: str | None = None
    summary: EvidenceRef | None = None
    # The task token is stored encrypted; it is never part of any API response or log line.
    token_ciphertext: str | None = Field(default=None, exclude=False, repr=False)
    token_sha256: str | None = Field(default=None, repr=False)
    execution_name: str | None = None
    decided_outcome: AgentOutcome | None = None
    decided_by: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def public_view(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"token_ciphertext", "token_sha256"})


class OutboxItem(Versioned):
    tenant_id: TenantId
    outbox_id: str = Field(default_factory=lambda: new_id("obx_"))
    ticket_id: str
    provider: Provider
    external_ticket_id: str
    kind: OutboxKind
    body: str | None = None
    tags: list[str] = Field(default_factory=list)
    status_value: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    action: RequestedAction | None = None
    expected_external_updated_at: datetime | None = None
    status: OutboxStatus = "pending"
    attempts: int = 0
    # Claims over the item's whole life: replay resets `attempts` (the retry budget), never this.
    dispatches: int = 0
    last_error: str | None = None
    receipt: dict[str, Any] | None = None
    caused_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # AI-caused items only: the intent and rollout mode they were decided under, so writeback holds them to the
    # tenant's policy as it is when they go out (a switch to shadow stops what is queued). None: a person decided
    # it, or it was stored before these fields.
    intent: str | None = None
    rollout_mode: RolloutMode | None = None
    # The intent was a guess (out of scope, or below the classification threshold): its per-intent mode applies
    # only where stricter than the tenant's default, as when triage decides.
    intent_uncertain: bool = False
    # A public reply sending AI-written text: the article versions and passages it quotes, so writeback can check
    # them again right before sending (an article withdrawn or rewritten since the draft must not reach the
    # customer). None: stored before Deflect recorded them.
    citations: list[Citation] | None = None
    # Where `expected_external_updated_at` comes from: the helpdesk's own stamp, or, when the helpdesk sent none,
    # Deflect's receive time of the customer message. Set by writeback for the send only, never stored.
    baseline_from: Literal["helpdesk", "received"] = Field(default="helpdesk", exclude=True)


class AuditEvent(Record):
    """One link of a ticket's hash chain. `hash` covers every other field in canonical JSON."""

    tenant_id: TenantId
    ticket_id: str
    seq: int
    type: str
    actor: str
    at: datetime
    payload_sha256: str
    payload: dict[str, Any] = Field(default_factory=dict)
    evidence: list[EvidenceRef] = Field(default_factory=list)
    prev_hash: str
    hash: str = ""
