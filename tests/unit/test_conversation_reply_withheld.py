"""The conversation API shows the customer only a reply that was not held back: when the tenant switches to shadow
after triage answered, writeback suppresses the reply, and a later GET must not serve it either."""

from deflect.domain.models import DecisionPolicy, Message, Ticket
from deflect.repositories import Outbox, TenantConfigs, Tickets, save
from deflect.services.intake import Intake
from deflect.services.outbox import ref
from deflect.services.writeback import Writeback
from deflect.webhooks import Requester
from tests.unit.triage_fakes import make_world


class NothingSent:
    def connector(self, tenant_id, item):
        raise AssertionError("nothing may be sent")


def _answered_conversation():
    world = make_world()
    ticket = Ticket(
        tenant_id="acme", ticket_id="cnv_1", provider="api", external_id="cnv_1", customer_id=None
    )
    message = Message(
        tenant_id="acme", ticket_id="cnv_1", message_id="m1", body_redacted="How do I export a report?"
    )
    save(world.store, world.ctx, [Tickets(world.store).save_write(ticket), Tickets.message_write(message)])
    result = world.service.triage(world.ctx, "cnv_1", "m1")
    assert result.outcome == "deflect" and result.reply
    return world, result


def _shown(world):
    intake = Intake(world.store, world.evidence, None, None, world.audit, None)
    return intake.conversation(world.ctx, "cnv_1", Requester())


def test_an_answer_is_shown_until_writeback_holds_it_back():
    world, _ = _answered_conversation()
    assert _shown(world)["status"] == "answered"
    assert "Export CSV" in _shown(world)["decision"]["reply"]


def test_a_reply_the_kill_switch_held_back_is_not_shown_to_the_customer():
    world, result = _answered_conversation()
    configs = TenantConfigs(world.store)
    config = configs.find(world.ctx)
    shadow = config.model_copy(update={"policy": DecisionPolicy(rollout_default="shadow")})
    save(world.store, world.ctx, [configs.save_write(shadow)])
    [outbox_id] = result.outbox_ids
    item = Outbox(world.store).get(world.ctx, outbox_id)
    assert (
        Writeback(world.store, NothingSent(), audit=world.audit).dispatch(ref(item)).outcome == "suppressed"
    )

    shown = _shown(world)
    assert shown["decision"]["reply"] is None
    assert shown["decision"]["citations"] == []
    assert shown["status"] == "with_agent"


def test_a_reply_writeback_could_not_deliver_is_still_shown():
    # An API-only tenant without a writeback connection: the item ends dead, but the answer was the customer's.
    world, result = _answered_conversation()
    [outbox_id] = result.outbox_ids
    outbox = Outbox(world.store)
    item = outbox.get(world.ctx, outbox_id)
    save(world.store, world.ctx, [outbox.save_write(item.model_copy(update={"status": "dead"}))])

    shown = _shown(world)
    assert shown["status"] == "answered"
    assert "Export CSV" in shown["decision"]["reply"]
