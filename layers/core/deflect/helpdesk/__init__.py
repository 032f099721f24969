"""Helpdesk and CRM writeback: one HTTP client, one connector per provider, typed errors.

Importing this package is cheap (no HTTP, no boto3): `deflect.ports` imports its models.
Connectors live in their own modules and are built by `deflect.helpdesk.directory.HelpdeskDirectory`.
"""
