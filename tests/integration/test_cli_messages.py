"""Operators' messages that need more than a unit test: a `--local` stack that is not running (a real socket), and
erasing a customer whose erasure already completed (the audited story of a ticket)."""

from __future__ import annotations

import json
import socket

from deflect.repositories import Customers
from tests.cli_shell import deflect, one_line
from tests.integration.insight_story import escalated_ticket, seed_tenant


def test_a_local_stack_that_stopped_is_named_not_a_traceback(capsys, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    stack = tmp_path / "stack.json"
    # what `make run` wrote before it was killed (it removes the file when it stops cleanly)
    stack.write_text(
        json.dumps(
            {
                "environment": {
                    "AWS_ENDPOINT_URL": endpoint,
                    "AWS_ACCESS_KEY_ID": "x",
                    "AWS_SECRET_ACCESS_KEY": "x",
                }
            }
        )
    )

    code, out, err = deflect(
        capsys, "--local", "--stack-file", str(stack), "tasks", "list", "--tenant", "demo"
    )

    assert code == 1 and out == ""
    assert one_line(err) == (
        f"cannot reach the local stack at {endpoint}: is `make run` still running? (start it again; {stack} may "
        "be left from a stack that did not stop cleanly)"
    )


def test_a_retried_erasure_succeeds_and_says_the_customer_is_already_erased(moto_stack, capsys):
    container = moto_stack.container()
    ctx = seed_tenant(container, "acme")
    story = escalated_ticket(container, ctx)
    erase = ["customer", "erase", "--tenant", "acme", "--customer", story.customer_id]
    capsys.readouterr()  # the story's metrics (the CLI turns them off for its own output)

    code, out, err = deflect(capsys, *erase)
    first = json.loads(out)
    assert code == 0 and err == ""
    assert first["tickets"] == [story.ticket_id] and first["key_destroyed"] is True
    assert Customers(container.store).get(ctx, story.customer_id) is None

    # Everything under the customer's id is gone now; the erasure is on its own audit chain: a retry is not
    # "no such customer".
    code, out, err = deflect(capsys, *erase)
    again = json.loads(out)
    assert code == 0
    assert (again["redacted_items"], again["deleted_items"], again["key_destroyed"]) == (0, 0, False)
    assert one_line(err) == (
        f"{story.customer_id}: already erased: nothing was left under that id; audit chain "
        f"customer-{story.customer_id} records it"
    )

    code, out, err = deflect(capsys, *erase, "--thorough")
    assert code == 0 and json.loads(out)["tickets"] == [story.ticket_id]
    assert one_line(err).startswith(f"{story.customer_id}: already erased:")

    # while an id nothing names is still refused, in the same tenant
    code, out, err = deflect(capsys, "customer", "erase", "--tenant", "acme", "--customer", "cus_typo")
    assert code == 1 and out == ""
    assert one_line(err).startswith(
        "no customer 'cus_typo' in tenant 'acme': nothing is stored under that id"
    )
