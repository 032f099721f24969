"""Escalation and approval: the escalation workflow's steps, human tasks, summaries and the agents' decisions.

Triage starts an escalation with `start_escalation(container, decision, ticket)`; the input contract is
`EscalationRequest`.
"""

from deflect.escalation.models import EscalationRequest
from deflect.escalation.start import execution_name, start_escalation

__all__ = ["EscalationRequest", "execution_name", "start_escalation"]
