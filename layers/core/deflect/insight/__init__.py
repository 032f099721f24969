"""Accountability and insight: ticket timelines, analytics, metrics, usage and cost, domain events, privacy.

Modules: events (canonical audit event types), facts (label-only projections by tenant-day), analytics,
metrics (EMF), usage (metering, prices, budgets, rate limits), domain_events (EventBridge schemas),
privacy (sealed evidence, erasure, retention), timeline (timeline and rebuild from audit), service (observe).
"""
