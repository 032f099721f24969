"""The one helpdesk HTTP client: Retry-After honoured, 5xx retried with growing backoff only when repeating is
safe, per-tenant rate limits, typed errors. No sockets: a scripted exchange answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from deflect.domain.errors import Throttled, TransientFailure
from deflect.helpdesk.errors import HelpdeskAuthFailed, PermanentFailure
from deflect.helpdesk.http import (
    HelpdeskHttp,
    HttpResponse,
    NoAnswer,
    NotSent,
    TokenBuckets,
    parse_retry_after,
)


@dataclass
class ScriptedHttp(HelpdeskHttp):
    script: list = field(default_factory=list)
    exchanges: int = 0

    def _exchange(self, method, url, headers, body, timeout_s, attempt):
        self.exchanges += 1
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        status, headers = step if isinstance(step, tuple) else (step, {})
        return HttpResponse(status, headers, b'{"ok": true}')


def client(*script, **kw) -> tuple[ScriptedHttp, list[float]]:
    sleeps: list[float] = []
    kw.setdefault(
        "limits", TokenBuckets(clock=lambda: 0.0)
    )  # time stands still: waits are exactly what was asked
    http = ScriptedHttp(script=list(script), sleep=sleeps.append, rng=lambda: 0.0, **kw)
    return http, sleeps


def call(http: HelpdeskHttp, *, safe: bool = True, key: str = "acme:zendesk", rate: int = 6000):
    return http.request(
        "PUT",
        "https://acme.zendesk.com/api/v2/tickets/1.json",
        limit_key=key,
        rate_per_minute=rate,
        safe_to_retry=safe,
        json_body={},
    )


def test_429_waits_exactly_as_long_as_retry_after_says():
    http, sleeps = client((429, {"retry-after": "7"}), 200)
    assert call(http).status == 200
    assert sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured():
    later = datetime.now(UTC) + timedelta(seconds=30)
    wait = parse_retry_after(format_datetime(later, usegmt=True))
    assert 28 <= wait <= 30


NOON = 1_767_268_800.0  # 2026-01-01T12:00:00Z


def test_a_429_without_retry_after_waits_until_the_rate_limit_window_resets_as_intercom_says():
    # Intercom's 429 carries only X-RateLimit-* headers; the reset is a unix time.
    http, sleeps = client((429, {"x-ratelimit-reset": str(int(NOON) + 8)}), 200, wall_clock=lambda: NOON)
    assert call(http).status == 200
    assert sleeps == [8.0]


def test_a_jira_reset_time_in_iso_8601_is_honoured_and_a_long_one_goes_back_to_the_queue():
    http, sleeps = client((429, {"x-ratelimit-reset": "2026-01-01T12:01Z"}), wall_clock=lambda: NOON)
    with pytest.raises(Throttled) as raised:
        call(http)
    assert raised.value.retry_after_s == 60.0 and sleeps == []


def test_a_rate_limit_reset_already_past_still_backs_off():
    http, sleeps = client((429, {"x-ratelimit-reset": str(int(NOON) - 1)}), 200, wall_clock=lambda: NOON)
    assert call(http).status == 200
    assert sleeps == [http.backoff(1)] and sleeps[0] > 0


def test_retry_after_wins_over_the_rate_limit_reset():
    http, sleeps = client(
        (429, {"retry-after": "2", "x-ratelimit-reset": str(int(NOON) + 9)}), 200, wall_clock=lambda: NOON
    )
    assert call(http).status == 200
    assert sleeps == [2.0]


def test_429_is_retried_even_for_a_request_that_is_not_safe_to_repeat():
    # 429 means the provider did not process it: repeating cannot duplicate the effect.
    http, sleeps = client((429, {"retry-after": "1"}), 201)
    assert call(http, safe=False).status == 201
    assert sleeps == [1.0]


def test_a_retry_after_longer_than_a_function_should_wait_goes_back_to_the_queue():
    http, sleeps = client((429, {"retry-after": "120"}))
    with pytest.raises(Throttled) as raised:
        call(http)
    assert raised.value.retry_after_s == 120
    assert sleeps == []


def test_a_429_pauses_the_tenant_for_later_requests_but_not_other_tenants():
    http, sleeps = client((429, {"retry-after": "5"}), 200, 200, 200)
    call(http)  # sleeps 5 after the 429, then succeeds
    assert sleeps == [5.0]
    call(http, key="other:zendesk")
    assert sleeps == [5.0]  # another tenant is not paused
    call(http)
    assert sleeps == [5.0, 5.0]  # same tenant: the clock has not moved, so the pause still applies


def test_5xx_is_retried_with_growing_backoff_when_repeating_is_safe():
    http, sleeps = client(500, 502, 503, 200)
    assert call(http, safe=True).status == 200
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2]
    # equal jitter: between half and all of base * 2^(n-1)
    for n, slept in enumerate(sleeps, start=1):
        step = http.backoff_base_s * 2 ** (n - 1)
        assert step / 2 <= slept <= step


def test_5xx_on_a_request_that_is_not_safe_to_repeat_is_left_to_the_connector():
    http, sleeps = client(500)
    with pytest.raises(TransientFailure) as raised:
        call(http, safe=False)
    assert raised.value.context["ambiguous"] is True
    assert http.exchanges == 1 and sleeps == []


def test_a_timeout_is_retried_only_when_safe():
    http, _ = client(NoAnswer("timeout"), 200)
    assert call(http, safe=True).status == 200
    http, _ = client(NoAnswer("timeout"))
    with pytest.raises(TransientFailure):
        call(http, safe=False)


def test_a_refused_connection_is_retried_because_nothing_was_sent():
    http, sleeps = client(NotSent("refused"), 200)
    assert call(http, safe=False).status == 200
    assert len(sleeps) == 1


def test_retries_stop_after_max_attempts():
    http, sleeps = client(500, 500, 500, 500, max_attempts=4)
    with pytest.raises(TransientFailure):
        call(http)
    assert http.exchanges == 4 and len(sleeps) == 3


def test_rejected_credentials_and_bad_requests_are_permanent():
    http, _ = client(401)
    with pytest.raises(HelpdeskAuthFailed):
        call(http)
    http, _ = client(422)
    with pytest.raises(PermanentFailure) as raised:
        call(http)
    assert raised.value.status == 422


def test_the_token_bucket_spaces_requests_to_the_tenants_rate():
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    waits = [buckets.reserve("acme:freshdesk", 60, max_wait_s=100) for _ in range(8)]
    # 60/min: a burst of 6 (a tenth of a minute), then one per second
    assert waits[:6] == [0, 0, 0, 0, 0, 0]
    assert waits[6] == pytest.approx(1.0) and waits[7] == pytest.approx(2.0)
    with pytest.raises(Throttled) as raised:
        buckets.reserve("acme:freshdesk", 60, max_wait_s=2.5)
    assert raised.value.retry_after_s == pytest.approx(3.0)
    assert buckets.reserve("globex:freshdesk", 60, max_wait_s=0) == 0  # tenants do not share a bucket
