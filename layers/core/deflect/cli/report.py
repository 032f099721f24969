"""`deflect report`, `deflect customer erase`, `deflect usage`: accountability from the command line.

`report` writes one self-contained HTML page (plots inlined as PNG, no external assets) so it can be mailed
or archived as is. matplotlib is a dev-only dependency, imported only here and only when plotting.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from deflect.cli.operator import add_actor, operator_name
from deflect.domain.tenancy import TenantContext


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="HTML report of deflection, escalation quality, SLAs and cost"
    )
    report.add_argument("--tenant", required=True)
    report.add_argument("--out", required=True, help="HTML file to write")
    report.add_argument("--from", dest="date_from", help="first day (yyyy-mm-dd); default 30 days ago")
    report.add_argument("--to", dest="date_to", help="last day (yyyy-mm-dd); default today")
    report.add_argument(
        "--reopen-window", type=int, default=7, help="days without reopen that verify a deflection"
    )
    report.add_argument(
        "--rebuild-facts", action="store_true", help="first re-record analytics facts from every audit chain"
    )
    report.set_defaults(func=run_report)

    customer = commands.add_parser("customer", help="customer data").add_subparsers(
        dest="customer_command", required=True
    )
    erase = customer.add_parser(
        "erase", help="erase a customer's personal data (crypto-shredding for evidence)"
    )
    erase.add_argument("--tenant", required=True)
    erase.add_argument("--customer", required=True)
    erase.add_argument(
        "--thorough", action="store_true", help="also look through every audited ticket of the tenant"
    )
    add_actor(erase)
    erase.set_defaults(func=run_erase)

    usage = commands.add_parser("usage", help="metered usage and estimated cost per day")
    usage.add_argument("--tenant", required=True)
    usage.add_argument("--day", required=True, help="yyyy-mm-dd")
    usage.add_argument("--to", dest="date_to", help="last day of a range (yyyy-mm-dd)")
    usage.set_defaults(func=run_usage)


def _ctx(tenant: str, actor: str) -> TenantContext:
    return TenantContext(tenant_id=tenant, actor=f"cli:{actor}", via="cli")


def run_report(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    c = container()
    ctx = _ctx(args.tenant, "report")
    today = datetime.now(UTC).date()
    last = date.fromisoformat(args.date_to) if args.date_to else today
    first = date.fromisoformat(args.date_from) if args.date_from else last - timedelta(days=29)
    if args.rebuild_facts:
        replayed = sum(c.insight.replay(ctx, c.audit, t, publish=False) for t in c.audit.audited_tickets(ctx))
        print(json.dumps({"facts_rebuilt": replayed}))
    summary = c.analytics.summary(ctx, first, last, args.reopen_window)
    series = c.analytics.series(ctx, first, last, args.reopen_window)
    usage = c.usage.days(ctx, first, last)
    try:
        Path(args.out).write_text(render_report(summary, series, usage))
    except OSError as error:
        raise SystemExit(f"{args.out}: cannot write the report ({error.strerror or error})") from None
    print(json.dumps({"tenant": args.tenant, "out": args.out, "from": str(first), "to": str(last)}))
    return 0


def run_erase(args: argparse.Namespace) -> int:
    """Erase, and say so when there was no such customer (exit 1) rather than print a report of zeros.

    Known: anything left under the customer's id (profile, requester lookups, ticket links, data key; erasure
    deletes the profile first and the key last, so a retry of an interrupted erasure finds the rest and finishes
    it). Nothing left: a mistyped id, or a customer whose erasure already completed, which is still on the record
    (a retry of it must not fail): a customer the admin API made has an audit chain of its own (`customer-<id>`),
    and the tickets of one intake made still name it (their personal fields are blanked, their ids kept), so the
    tenant's audited tickets are looked through (as --thorough does) before the id is called unknown."""
    from deflect.bootstrap import container
    from deflect.domain import keys

    c = container()
    ctx = TenantContext(tenant_id=args.tenant, actor=operator_name(args.actor), via="cli")
    config = c.tenants.find(ctx)
    stored = bool(c.store.query(ctx, keys.customer_pk(ctx.tenant_id, args.customer), limit=1))
    # where tenant_admin.put_customer audits a customer it creates or changes (erasure keeps audit chains)
    chain = f"customer-{args.customer}"
    recorded = not stored and bool(c.audit.entries(ctx, chain))
    if stored or recorded or args.thorough:
        report = c.erasure.erase_customer(ctx, args.customer, config=config, thorough=args.thorough)
        named = report.tickets
    else:
        named = c.erasure.tickets_of(ctx, args.customer, thorough=True)
        report = c.erasure.erase_customer(ctx, args.customer, config=config) if named else None
    if report is None or not (stored or recorded or named):
        raise SystemExit(_no_customer(args, config))
    print(report.model_dump_json())
    if not stored:
        traces = [f"audit chain {chain} records it"] if recorded else []
        if named:
            traces.append(f"{len(named)} audited ticket(s) still name it, with their personal data blanked")
        again = "" if args.thorough or not named else "; --thorough looks through them again"
        print(
            f"{args.customer}: already erased: nothing was left under that id; {'; '.join(traces)}{again}",
            file=sys.stderr,
        )
    return 0


def _no_customer(args: argparse.Namespace, config: Any) -> str:
    tenant = f"tenant {args.tenant!r}" + ("" if config is not None else " (no such tenant either)")
    return (
        f"no customer {args.customer!r} in {tenant}: nothing is stored under that id and no audited ticket names "
        "it, so nothing was erased"
    )


def run_usage(args: argparse.Namespace) -> int:
    from deflect.bootstrap import container

    first = date.fromisoformat(args.day)
    last = date.fromisoformat(args.date_to) if args.date_to else first
    for day in container().usage.days(_ctx(args.tenant, "usage"), first, last):
        print(day.model_dump_json())
    return 0


# ------------------------------------------------------------------ rendering

# (title, {line label: DailyPoint attribute}, y axis)
SERIES_CHARTS = (
    (
        "Tickets per day",
        {
            "received": "received",
            "deflected": "deflected",
            "verified deflections": "verified",
            "escalated": "escalated",
        },
        "tickets",
    ),
    (
        "Quality per day",
        {
            "wrong deflections": "wrong_deflections",
            "unneeded escalations": "unneeded_escalations",
            "SLA breaches": "sla_breaches",
        },
        "tickets",
    ),
    ("First response (median)", {"minutes": "first_response_median_minutes"}, "minutes"),
    ("Agreement with agents (shadow/assist)", {"rate": "agreement_rate"}, "share"),
)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def plots(series: Sequence[Any], usage: Sequence[Any], gaps: Sequence[Any]) -> list[tuple[str, str]]:
    """(title, base64 PNG) per chart; empty when matplotlib is not installed (it is a dev-only extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    charts: list[tuple[str, str]] = []
    if series:
        days = [p.day for p in series]

        def chart(title: str, lines: dict[str, list[Any]], ylabel: str) -> None:
            figure, axis = plt.subplots(figsize=(8, 3))
            for label, values in lines.items():
                axis.plot(
                    days, [v if v is not None else float("nan") for v in values], marker="o", label=label
                )
            axis.set_ylabel(ylabel)
            # one tick per day at most (plain dates, not hours)
            axis.xaxis.set_major_locator(
                mdates.AutoDateLocator(minticks=2, maxticks=10, interval_multiples=False)
            )
            axis.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
            axis.legend(loc="best", fontsize=8)
            figure.autofmt_xdate()
            charts.append((title, _png(figure)))
            plt.close(figure)

        for title, lines, ylabel in SERIES_CHARTS:
            chart(title, {label: [getattr(p, attr) for p in series] for label, attr in lines.items()}, ylabel)
    if usage:
        figure, axis = plt.subplots(figsize=(8, 3))
        parts = sorted({k for u in usage for k in u.cost.parts})
        bottom = [0.0] * len(usage)
        for part in parts:
            values = [u.cost.parts.get(part, 0.0) for u in usage]
            axis.bar([u.day for u in usage], values, bottom=bottom, label=part)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axis.set_ylabel("USD (estimate)")
        axis.legend(loc="upper left", fontsize=7, ncol=4)
        figure.autofmt_xdate()
        charts.append(("Estimated AWS cost per day", _png(figure)))
        plt.close(figure)
    if gaps:
        figure, axis = plt.subplots(figsize=(8, 0.4 * len(gaps) + 1))
        labels = [f"{g.product_area} / {g.question}" for g in gaps][::-1]
        axis.barh(labels, [g.count for g in gaps][::-1])
        axis.set_xlabel("questions")
        charts.append(("Knowledge gaps", _png(figure)))
        plt.close(figure)
    return charts


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            value = f"{value:.4g}"
        return html.escape("—" if value is None else str(value))

    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, model: Any) -> str:
    rows = [
        (k, json.dumps(v) if isinstance(v, (dict, list)) else v)
        for k, v in model.model_dump(mode="json").items()
    ]
    return f"<h2>{html.escape(title)}</h2>" + _table(rows, ["measure", "value"])


def render_report(summary: Any, series: Sequence[Any], usage: Sequence[Any]) -> str:
    charts = plots(series, usage, summary.knowledge_gaps)
    images = (
        "".join(
            f'<figure><figcaption>{html.escape(t)}</figcaption><img alt="{html.escape(t)}" src="data:image/png;base64,{png}"></figure>'
            for t, png in charts
        )
        or "<p>(plots need matplotlib, part of the dev extra)</p>"
    )
    sections = [
        _section("Deflection", summary.deflection),
        _section("Escalation quality", summary.escalation),
        _section("Agent edits on AI drafts", summary.edits),
        _section("Time to first response", summary.first_response),
        _section("Time to resolution", summary.resolution),
        _section("SLA", summary.sla),
        _section("Classification accuracy at close", summary.classification),
        _section("Agreement in shadow / assist", summary.agreement),
        "<h2>Knowledge gaps</h2>"
        + _table(
            [
                (g.product_area, g.question, g.count, g.unanswered, g.low_confidence)
                for g in summary.knowledge_gaps
            ],
            ["product area", "question", "count", "unanswered", "low confidence"],
        ),
        "<h2>Usage and estimated cost</h2>"
        + _table(
            [
                (
                    u.day,
                    u.counters.get("tickets"),
                    u.counters.get("model_input_tokens"),
                    u.counters.get("model_output_tokens"),
                    u.cost.total,
                )
                for u in usage
            ],
            ["day", "tickets", "model input tokens", "model output tokens", "estimated USD"],
        ),
    ]
    title = f"Deflect report — {summary.tenant_id}, {summary.date_from} to {summary.date_to}"
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;"
        "text-align:left;font-size:.9em}figure{margin:1em 0}img{max-width:100%}"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Generated {html.escape(summary.generated_at.isoformat())}. Definitions: README, "
        f"'Audit, timeline and analytics'.</p>{images}{''.join(sections)}</body></html>"
    )
