"""The one HTTP client every connector uses: stdlib urllib (nothing extra in the layer), timeouts, retries with
exponential backoff and jitter, 429/Retry-After (or X-RateLimit-Reset) honoured, and per-tenant token-bucket rate limits.

Retry rules, chosen so that retrying can never create a second effect:
- 429, and 503 with Retry-After: the provider did not process the request → always retried after the wait.
- connection refused: nothing was sent → always retried.
- other 5xx, timeouts, dropped connections: the effect may or may not exist → retried here only when the caller
  says the request is safe to repeat (reads, set-state updates, requests carrying an idempotency key). Unsafe
  requests raise `TransientFailure`; the connector looks for its effect on the helpdesk before trying again.
- a wait longer than `max_inline_wait_s` is not slept inside a Lambda: `Throttled(retry_after_s)` goes up so the
  queue retries later.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from deflect.domain.errors import Throttled, TransientFailure
from deflect.helpdesk.errors import HelpdeskAuthFailed, PermanentFailure
from deflect.helpdesk.models import _is_loopback

USER_AGENT = "deflect-writeback/1"


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise TransientFailure(
                "helpdesk answered with a body that is not JSON", status=self.status
            ) from error


@dataclass
class RequestEvent:
    """Seen by hooks after every exchange (metrics, tests). Never carries bodies or credentials."""

    method: str
    url: str
    status: int | None
    elapsed_s: float
    attempt: int
    error: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would resend our Authorization header to wherever it points: treat it as an answer instead.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


@dataclass
class _Bucket:
    tokens: float
    updated: float
    paused_until: float = 0.0


class TokenBuckets:
    """Per-(tenant, provider) token buckets. A provider's 429 pauses that tenant's bucket for Retry-After.

    Buckets live per process (per Lambda container): the function's reserved concurrency bounds the total.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @staticmethod
    def capacity(rate_per_minute: int) -> float:
        # A tenth of a minute's allowance as burst: smooth enough for providers that count per minute.
        return max(1.0, rate_per_minute / 10)

    def reserve(self, key: str, rate_per_minute: int, max_wait_s: float) -> float:
        """Take one token; return how long the caller must wait first. Raises Throttled past `max_wait_s`."""
        per_second = rate_per_minute / 60.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(tokens=self.capacity(rate_per_minute), updated=now)
            bucket.tokens = min(
                self.capacity(rate_per_minute), bucket.tokens + (now - bucket.updated) * per_second
            )
            bucket.updated = now
            wait = max(0.0, bucket.paused_until - now)
            if bucket.tokens < 1:
                wait = max(wait, (1 - bucket.tokens) / per_second)
            if wait > max_wait_s:
                raise Throttled("tenant rate limit for this helpdesk reached", retry_after_s=round(wait, 3))
            bucket.tokens -= 1  # a reservation: later callers queue behind this one
            return wait

    def pause(self, key: str, seconds: float) -> None:
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(key, _Bucket(tokens=0.0, updated=now))
            bucket.paused_until = max(bucket.paused_until, now + seconds)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError):
        return None


def parse_rate_limit_reset(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds until `X-RateLimit-Reset`, which a 429 may carry instead of Retry-After: Intercom sends a unix
    timestamp, Jira an ISO 8601 time, others the seconds left in the window."""
    if not value:
        return None
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now())
    if number > 1e12:  # a timestamp in milliseconds
        number /= 1000
    return max(0.0, number - now()) if number > 1e9 else max(0.0, number)


@dataclass
class HelpdeskHttp:
    timeout_s: float = 10.0
    max_attempts: int = 4
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    max_inline_wait_s: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    rng: Callable[[], float] = random.random
    limits: TokenBuckets = field(default_factory=TokenBuckets)
    hooks: list[Callable[[RequestEvent], None]] = field(default_factory=list)
    wall_clock: Callable[[], float] = time.time  # for waits the provider gives as a time of day

    def __post_init__(self) -> None:
        self._opener = urllib.request.build_opener(_NoRedirects())
        # Loopback (the local helpdesks) must not go through a proxy from the environment.
        self._loopback_opener = urllib.request.build_opener(_NoRedirects(), urllib.request.ProxyHandler({}))

    # ------------------------------------------------------------------ waits
    def backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': at least half the step, so waits always grow."""
        step = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return step / 2 + self.rng() * step / 2

    def backoff_sleep(self, attempt: int) -> None:
        self.sleep(self.backoff(attempt))

    # ------------------------------------------------------------------ requests
    def request(
        self,
        method: str,
        url: str,
        *,
        limit_key: str,
        rate_per_minute: int,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        raw_body: bytes | None = None,
        safe_to_retry: bool,
        accept: tuple[int, ...] = (),
        timeout_s: float | None = None,
    ) -> HttpResponse:
        """Send one logical request; returns 2xx answers and any status in `accept`, raises typed errors otherwise."""
        body = (
            raw_body
            if raw_body is not None
            else (None if json_body is None else json.dumps(json_body).encode())
        )
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        for attempt in range(1, self.max_attempts + 1):
            wait = self.limits.reserve(limit_key, rate_per_minute, self.max_inline_wait_s)
            if wait:
                self.sleep(wait)
            last = attempt == self.max_attempts
            try:
                response = self._exchange(
                    method, url, all_headers, body, timeout_s or self.timeout_s, attempt
                )
            except NotSent as error:
                if last:
                    raise TransientFailure(f"{method} {_where(url)}: could not connect") from error
                self.backoff_sleep(attempt)
                continue
            except NoAnswer as error:
                if safe_to_retry and not last:
                    self.backoff_sleep(attempt)
                    continue
                raise TransientFailure(
                    f"{method} {_where(url)}: no answer ({error})", ambiguous=True
                ) from error

            status = response.status
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.wall_clock)
            if status == 429 and retry_after is None:
                # Intercom never sends Retry-After and Jira only may: without it, retrying on our own short
                # backoff would hit the same limited window again until the attempts ran out. A reset already
                # past (clock skew, the window rolling over) is no reason to come back at once: at least backoff.
                reset = parse_rate_limit_reset(response.headers.get("x-ratelimit-reset"), self.wall_clock)
                retry_after = None if reset is None else max(reset, self.backoff(attempt))
            if status == 429 or (status == 503 and retry_after is not None):
                wait = retry_after if retry_after is not None else self.backoff(attempt)
                # The whole tenant waits (its bucket is paused), at least Retry-After, plus up to 10% so queued
                # requests do not all come back in the same instant. The next reserve() does the waiting.
                self.limits.pause(limit_key, wait * (1 + 0.1 * self.rng()))
                if last or wait > self.max_inline_wait_s:
                    raise Throttled(
                        f"{method} {_where(url)}: provider asked to slow down", retry_after_s=wait
                    )
                continue
            if 200 <= status < 300 or status in accept:
                return response
            if status >= 500 or status == 408:
                if safe_to_retry and not last:
                    self.backoff_sleep(attempt)
                    continue
                raise TransientFailure(
                    f"{method} {_where(url)}: HTTP {status}", status=status, ambiguous=not safe_to_retry
                )
            if status in (401, 403):
                raise HelpdeskAuthFailed(f"{method} {_where(url)}: HTTP {status}", status=status)
            raise PermanentFailure(f"{method} {_where(url)}: HTTP {status}", status=status)
        raise TransientFailure(
            f"{method} {_where(url)}: retries exhausted"
        )  # pragma: no cover - loop always returns

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        timeout_s: float,
        attempt: int,
    ) -> HttpResponse:
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - https/loopback only
        host = urlsplit(url).hostname or ""
        opener = self._loopback_opener if _is_loopback(host) else self._opener
        started = time.perf_counter()
        status: int | None = None
        error_name: str | None = None
        try:
            try:
                with opener.open(request, timeout=timeout_s) as answer:
                    status = answer.status
                    return HttpResponse(status, _lower(answer.headers.items()), answer.read())
            except urllib.error.HTTPError as answer:
                status = answer.code
                with answer:
                    return HttpResponse(status, _lower(answer.headers.items()), answer.read())
        except urllib.error.URLError as error:
            error_name = type(error.reason).__name__
            if isinstance(error.reason, ConnectionRefusedError | socket.gaierror):
                raise NotSent(error_name) from error
            raise NoAnswer(error_name) from error
        except (TimeoutError, ConnectionError, HTTPException, OSError) as error:
            error_name = type(error).__name__
            raise NoAnswer(error_name) from error
        finally:
            event = RequestEvent(
                method, _where(url), status, time.perf_counter() - started, attempt, error_name
            )
            for hook in self.hooks:
                hook(event)


class NotSent(Exception):
    """The request never left this machine: repeating it cannot duplicate anything."""


class NoAnswer(Exception):
    """The request may have reached the provider, but no answer came back."""


def _lower(items: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in items}


def _where(url: str) -> str:
    # Host and path only: query strings may carry ids we do not want in logs.
    parts = urlsplit(url)
    return f"{parts.hostname}{parts.path}"
