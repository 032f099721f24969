"""Usage metering, cost estimates, budgets and request-rate limits, per tenant per day.

Counting: a botocore hook on every client the container builds tallies each AWS request the code makes
(DynamoDB request units, S3 PUT/GET, Step Functions, SQS, KMS, EventBridge) and the Bedrock tokens it uses,
attributed to the tenant found in the request itself (`T#{t}#` keys, `tenant=` S3 keys, the tenant attribute or
encryption context) or else to the tenant the code bound last. Lambda time comes from `metered(handler)`.
Tallies are buffered in memory and added to `T#{t}#USAGE` / `DAY#{yyyy-mm-dd}` with one atomic ADD per tenant
when the invocation ends, so counting costs one write per tenant per invocation, not one per request.

Estimates, not invoices: request units are estimated per call (1 per item, 2 for transactions), Step Functions
transitions per execution come from the price table. Good enough for budgets and for comparing tenants.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from deflect.domain import keys
from deflect.domain.errors import Throttled
from deflect.domain.models import TenantConfig, utcnow
from deflect.domain.tenancy import TENANT_ID_PATTERN, TenantContext
from deflect.insight import metrics
from deflect.ports import CounterStore
from deflect.repositories import TenantConfigs

PRICES_FILE = Path(__file__).with_name("prices.json")
COUNTERS = (
    "tickets",
    "messages",
    "model_requests",
    "model_input_tokens",
    "model_output_tokens",
    "ddb_read_units",
    "ddb_write_units",
    "s3_put",
    "s3_get",
    "sfn_requests",
    "sfn_transitions",
    "sqs_requests",
    "sqs_fifo_requests",
    "kms_requests",
    "events_published",
    "lambda_invocations",
    "lambda_mb_ms",
)


# ------------------------------------------------------------------ prices and cost


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="allow")

    currency: str = "USD"
    region: str = "us-east-1"
    model: dict[str, Any]
    dynamodb: dict[str, float]
    s3: dict[str, float]
    stepfunctions: dict[str, float]
    # `lambda` is a keyword: the field has an alias
    lambda_: dict[str, Any]
    sqs: dict[str, float]
    kms: dict[str, float]
    eventbridge: dict[str, float]
    commercial_ai_agents: dict[str, Any] = {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        raw = json.loads(Path(path or PRICES_FILE).read_text())
        raw["lambda_"] = raw.pop("lambda")
        return cls.model_validate(raw)

    def cost(self, usage: Mapping[str, int]) -> CostBreakdown:
        u = Counter({k: int(v) for k, v in usage.items()})
        parts = {
            "model": u["model_input_tokens"] / 1e6 * self.model["input_per_million_tokens"]
            + u["model_output_tokens"] / 1e6 * self.model["output_per_million_tokens"],
            "dynamodb": u["ddb_write_units"] / 1e6 * self.dynamodb["write_request_unit_per_million"]
            + u["ddb_read_units"] / 1e6 * self.dynamodb["read_request_unit_per_million"],
            "s3": u["s3_put"] / 1e3 * self.s3["put_copy_post_list_per_thousand"]
            + u["s3_get"] / 1e3 * self.s3["get_select_per_thousand"],
            "stepfunctions": u["sfn_transitions"]
            / 1e3
            * self.stepfunctions["standard_transition_per_thousand"],
            "lambda": u["lambda_mb_ms"] / 1024 / 1000 * self.lambda_["gb_second"]
            + u["lambda_invocations"] / 1e6 * self.lambda_["request_per_million"],
            "sqs": u["sqs_requests"] / 1e6 * self.sqs["standard_request_per_million"]
            # FIFO requests (the writeback queue) cost more; a table without their price charges them as standard.
            + u["sqs_fifo_requests"]
            / 1e6
            * self.sqs.get("fifo_request_per_million", self.sqs["standard_request_per_million"]),
            "kms": u["kms_requests"] / 1e4 * self.kms["request_per_ten_thousand"],
            "eventbridge": u["events_published"] / 1e6 * self.eventbridge["custom_event_per_million"],
        }
        return CostBreakdown(
            parts={k: round(v, 8) for k, v in parts.items()}, total=round(sum(parts.values()), 8)
        )


class CostBreakdown(BaseModel):
    parts: dict[str, float]
    total: float


class DailyUsage(BaseModel):
    tenant_id: str
    day: date
    counters: dict[str, int]
    cost: CostBreakdown


# ------------------------------------------------------------------ attribution of AWS requests

_bound_tenant: ContextVar[str | None] = ContextVar("deflect_usage_tenant", default=None)


def _tenant_from_key(value: Any) -> str | None:
    if isinstance(value, str):
        if value.startswith("T#"):
            candidate = value[2:].split("#", 1)[0]
        elif value.startswith("tenant="):
            candidate = value[7:].split("/", 1)[0]
        else:
            return None
        return candidate if TENANT_ID_PATTERN.fullmatch(candidate) else None
    return None


def _dynamo_pk(params: Mapping[str, Any]) -> Any:
    for holder in ("Key", "Item"):
        if isinstance(params.get(holder), dict):
            return params[holder].get("PK", {}).get("S")
    values = params.get("ExpressionAttributeValues") or {}
    if ":pk" in values:
        return values[":pk"].get("S")
    for item in params.get("TransactItems") or []:
        for op in item.values():
            found = _dynamo_pk(op)
            if found:
                return found
    return None


def tenant_of_request(service: str, params: Mapping[str, Any]) -> str | None:
    """The tenant a request works for, read from the request itself (keys always carry it)."""
    if service == "dynamodb":
        return _tenant_from_key(_dynamo_pk(params))
    if service == "s3":
        return _tenant_from_key(params.get("Key") or params.get("Prefix"))
    if service == "kms":
        return (params.get("EncryptionContext") or {}).get("tenant")
    if service == "sqs":
        attribute = (params.get("MessageAttributes") or {}).get("tenant_id") or {}
        return attribute.get("StringValue")
    if service == "eventbridge":
        entries = params.get("Entries") or [{}]
        try:
            return json.loads(entries[0].get("Detail") or "{}").get("tenant_id")
        except ValueError:
            return None
    return None


_DDB_READS = {"GetItem": 1, "Query": 1}
_DDB_WRITES = {"PutItem": 1, "UpdateItem": 1, "DeleteItem": 1}


def request_counts(
    service: str, operation: str, params: Mapping[str, Any], prices: PriceTable
) -> dict[str, int]:
    """Billable units one request is estimated to use."""
    if service == "dynamodb":
        if operation in _DDB_READS:
            return {"ddb_read_units": 1}
        if operation in _DDB_WRITES:
            return {"ddb_write_units": 1}
        if operation == "TransactWriteItems":
            return {"ddb_write_units": 2 * len(params.get("TransactItems") or [])}
        if operation == "TransactGetItems":
            return {"ddb_read_units": 2 * len(params.get("TransactItems") or [])}
        if operation == "BatchWriteItem":
            return {"ddb_write_units": sum(len(v) for v in (params.get("RequestItems") or {}).values())}
        if operation == "BatchGetItem":
            return {
                "ddb_read_units": sum(
                    len(v.get("Keys", [])) for v in (params.get("RequestItems") or {}).values()
                )
            }
        return {}
    if service == "s3":
        if operation in {"GetObject", "HeadObject", "GetObjectTagging"}:
            return {"s3_get": 1}
        if operation in {"PutObject", "CopyObject", "ListObjects", "ListObjectsV2", "ListObjectVersions"}:
            return {"s3_put": 1}
        return {}
    if service == "sfn":
        counts = {"sfn_requests": 1}
        if operation == "StartExecution":
            counts["sfn_transitions"] = int(prices.stepfunctions.get("transitions_per_execution", 0))
        return counts
    if service == "sqs":
        return {
            "sqs_fifo_requests" if str(params.get("QueueUrl", "")).endswith(".fifo") else "sqs_requests": 1
        }
    if service == "kms":
        return {"kms_requests": 1}
    if service == "eventbridge" and operation == "PutEvents":
        return {"events_published": len(params.get("Entries") or [])}
    if service == "bedrock-runtime":
        return {"model_requests": 1}
    return {}


def tokens_of_response(http_response: Any, parsed: Mapping[str, Any]) -> tuple[int, int]:
    usage = parsed.get("usage") if isinstance(parsed, Mapping) else None
    if isinstance(usage, Mapping):  # Converse
        return int(usage.get("inputTokens", 0) or 0), int(usage.get("outputTokens", 0) or 0)
    headers = getattr(http_response, "headers", {}) or {}  # InvokeModel reports tokens in headers
    return (
        int(headers.get("x-amzn-bedrock-input-token-count", 0) or 0),
        int(headers.get("x-amzn-bedrock-output-token-count", 0) or 0),
    )


# ------------------------------------------------------------------ the meter


def usage_pk(tenant_id: str) -> str:
    return f"{keys.tenant_pk(tenant_id)}#USAGE"


def day_sk(day: date) -> str:
    return f"DAY#{day.isoformat()}"


class UsageMeter:
    HOOK_ID = "deflect-usage-meter"

    def __init__(self, counters: CounterStore, prices: PriceTable | None = None, clock: Any = None) -> None:
        self.counters = counters
        self.prices = prices or PriceTable.load()
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, date], Counter[str]] = {}
        self._invocation_tenants: set[str] = set()
        self._last_tenant: str | None = None
        self._paused = threading.local()

    def now(self) -> datetime:
        return self.clock.now() if self.clock else utcnow()

    # -- attribution
    def bind(self, tenant_id: str | None) -> None:
        """Name the tenant the following requests work for (when a request does not say so itself)."""
        _bound_tenant.set(tenant_id)
        if tenant_id:
            self._last_tenant = tenant_id

    def add(self, tenant_id: str, **counts: int) -> None:
        unknown = set(counts) - set(COUNTERS)
        if unknown:
            raise ValueError(f"unknown usage counters: {sorted(unknown)}")
        today = self.now().astimezone(UTC).date()
        with self._lock:
            bucket = self._pending.setdefault((tenant_id, today), Counter())
            bucket.update({k: int(v) for k, v in counts.items() if v})
            self._invocation_tenants.add(tenant_id)
            self._last_tenant = tenant_id

    # -- botocore instrumentation
    def instrument(self, events: Any) -> None:
        """Register on a botocore event emitter: a session's (future clients) or a client's `meta.events`."""
        events.register("before-parameter-build", self._before, unique_id=f"{self.HOOK_ID}-before")
        events.register("after-call.bedrock-runtime", self._after_model, unique_id=f"{self.HOOK_ID}-after")

    def _service(self, model: Any) -> str:
        service_id = str(getattr(model.service_model, "service_id", "") or "")
        return service_id.lower().replace(" ", "-")

    def _before(
        self, params: Mapping[str, Any], model: Any, context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if getattr(self._paused, "on", False):
            return
        service = self._service(model)
        counts = request_counts(service, model.name, params, self.prices)
        if not counts:
            return
        tenant = tenant_of_request(service, params) or _bound_tenant.get() or self._last_tenant
        if context is not None:
            context["deflect_tenant"] = tenant
        if tenant and TENANT_ID_PATTERN.fullmatch(str(tenant)):
            self.add(str(tenant), **counts)

    def _after_model(
        self, http_response: Any, parsed: Any, model: Any, context: dict[str, Any] | None = None, **_: Any
    ) -> None:
        tenant = (context or {}).get("deflect_tenant") or _bound_tenant.get() or self._last_tenant
        if not tenant:
            return
        input_tokens, output_tokens = tokens_of_response(http_response, parsed or {})
        self.add(tenant, model_input_tokens=input_tokens, model_output_tokens=output_tokens)
        metrics.tokens(input_tokens, output_tokens, tenant_id=tenant)

    # -- invocations
    def begin_invocation(self) -> None:
        """Forget whom the previous invocation worked for: a ping, a 401 or an unknown tenant's 404 that follows a
        tenant's request in the same warm Lambda is nobody's work, and must not count against that tenant's budget."""
        _bound_tenant.set(None)
        with self._lock:
            self._last_tenant = None
            self._invocation_tenants = set()

    def end_invocation(self, duration_ms: float, memory_mb: int) -> None:
        """Lambda time of one invocation, shared equally by the tenants it worked for."""
        with self._lock:
            tenants = sorted(self._invocation_tenants) or ([self._last_tenant] if self._last_tenant else [])
        for tenant in tenants:
            self.add(
                tenant, lambda_invocations=1, lambda_mb_ms=math.ceil(duration_ms * memory_mb / len(tenants))
            )
        with self._lock:
            self._invocation_tenants = set()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Requests made inside are not counted (the meter's own writes; tools that only look)."""
        before = getattr(self._paused, "on", False)
        self._paused.on = True
        try:
            yield
        finally:
            self._paused.on = before

    def flush(self) -> None:
        """Add the buffered tallies to each tenant's day item (one atomic ADD per tenant and day)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        try:
            with self.paused():
                for (tenant, day), counts in pending.items():
                    counts = Counter(counts)
                    counts["ddb_write_units"] += 1  # this very write
                    expires = (
                        int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) + 400 * 86400
                    )
                    ctx = TenantContext.system(tenant, "usage-meter")
                    self.counters.add_counters(
                        ctx, usage_pk(tenant), day_sk(day), dict(counts), ttl_epoch=expires
                    )
        except Exception:
            with self._lock:  # keep what could not be written for the next flush
                for key, counts in pending.items():
                    self._pending.setdefault(key, Counter()).update(counts)
            raise

    # -- reading
    def days(self, ctx: TenantContext, first: date, last: date) -> list[DailyUsage]:
        stored = dict(self.counters.counters(ctx, usage_pk(ctx.tenant_id), day_sk(first), day_sk(last)))
        result = []
        current = first
        while current <= last:
            totals = Counter(stored.get(day_sk(current), {}))
            with self._lock:
                totals.update(self._pending.get((ctx.tenant_id, current), Counter()))
            if totals:
                counts = {name: int(totals.get(name, 0)) for name in COUNTERS}
                result.append(
                    DailyUsage(
                        tenant_id=ctx.tenant_id, day=current, counters=counts, cost=self.prices.cost(counts)
                    )
                )
            current += timedelta(days=1)
        return result

    def today_cost(self, ctx: TenantContext) -> float:
        today = self.now().astimezone(UTC).date()
        found = self.days(ctx, today, today)
        return found[0].cost.total if found else 0.0


# ------------------------------------------------------------------ budgets and rate limits


def rate_pk(tenant_id: str) -> str:
    return f"{keys.tenant_pk(tenant_id)}#RATE"


class Guard:
    """Call first in every route that starts work for a tenant: raises Throttled (→ 429 + Retry-After).

    Refusing before any write is what makes a 429 lose nothing: the caller (helpdesk retry, API client) sends
    the same request again later and it is processed then, exactly once, by the normal dedupe.
    """

    def __init__(
        self,
        tenants: TenantConfigs,
        counters: CounterStore,
        meter: UsageMeter,
        clock: Any = None,
        config_cache_s: float = 30.0,
    ) -> None:
        self.tenants = tenants
        self.counters = counters
        self.meter = meter
        self.clock = clock
        self.config_cache_s = config_cache_s
        self._configs: dict[str, tuple[float, TenantConfig | None]] = {}

    def now(self) -> datetime:
        return self.clock.now() if self.clock else utcnow()

    def config(self, ctx: TenantContext) -> TenantConfig | None:
        cached = self._configs.get(ctx.tenant_id)
        if cached and time.monotonic() - cached[0] < self.config_cache_s:
            return cached[1]
        config = self.tenants.find(ctx)
        self._configs[ctx.tenant_id] = (time.monotonic(), config)
        return config

    def __call__(self, ctx: TenantContext) -> None:
        self.check(ctx)

    def check(self, ctx: TenantContext) -> None:
        self.meter.bind(ctx.tenant_id)
        config = self.config(ctx)
        if config is None:
            return  # unknown tenants are refused by the route's own lookup, indistinguishably
        now = self.now().astimezone(UTC)
        if config.daily_budget_usd is not None and self.meter.today_cost(ctx) >= float(
            config.daily_budget_usd
        ):
            metrics.count("BudgetExceeded", tenant_id=ctx.tenant_id)
            midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
            raise Throttled("daily budget exceeded", retry_after_s=max(1.0, (midnight - now).total_seconds()))
        if config.requests_per_minute:
            minute = now.strftime("%Y-%m-%dT%H:%M")
            totals = self.counters.add_counters(
                ctx,
                rate_pk(ctx.tenant_id),
                f"MIN#{minute}",
                {"requests": 1},
                ttl_epoch=int(now.timestamp()) + 180,
            )
            if totals.get("requests", 0) > config.requests_per_minute:
                metrics.count("RateLimited", tenant_id=ctx.tenant_id)
                raise Throttled(
                    "request rate limit", retry_after_s=max(1.0, 60 - now.second - now.microsecond / 1e6)
                )
