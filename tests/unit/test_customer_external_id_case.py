"""A helpdesk's or CRM's customer ids may differ only in case (Salesforce's 15-character ids do): two such ids are
two customers, never one. Emails stay case-insensitive. Lookups saved by earlier releases, which lower-cased every
id, still find their own customer and no other."""

import pytest

from deflect.domain.errors import Conflict
from deflect.domain.tenancy import TenantContext
from deflect.ports import Delete, Put
from deflect.repositories import Customers, TenantConfigs, Tickets
from deflect.services.intake import Intake
from deflect.services.tenant_admin import AccountUpdate, CustomerUpdate, TenantAdmin
from deflect.webhooks import Requester
from tests.unit.intake_fakes import NoSecrets
from tests.unit.triage_fakes import RecordingQueue, make_world

ANA = "0035g00000AbCdE"
BOB = "0035g00000abcde"
ADMIN = TenantContext(tenant_id="acme", actor="admin:crm", via="jwt", roles=frozenset({"admin"}))


class Once:
    """The delivery guard, where every request is new."""

    def once(self, key, fingerprint, work):
        return work()


def crm():
    world = make_world()
    admin = TenantAdmin(world.store, NoSecrets(), world.audit)
    admin.put_account(ADMIN, "acct-alpha", AccountUpdate(name="Alpha Corp", plan="enterprise"))
    admin.put_customer(
        ADMIN,
        "crm-ana",
        CustomerUpdate(email="ana@alpha.example", external_ids={"api": ANA}, account_id="acct-alpha"),
    )
    return world, admin


def test_two_crm_customers_whose_ids_differ_only_in_case_stay_two_customers():
    world, admin = crm()

    admin.put_customer(ADMIN, "crm-bob", CustomerUpdate(email="bob@beta.example", external_ids={"api": BOB}))

    customers = Customers(world.store)
    assert customers.find_by_requester(world.ctx, "ext:api", ANA).customer_id == "crm-ana"
    bob = customers.find_by_requester(world.ctx, "ext:api", BOB)
    assert bob.customer_id == "crm-bob" and bob.account_id is None


def test_the_same_id_still_identifies_one_crm_customer_and_an_email_ignores_case():
    world, admin = crm()

    with pytest.raises(Conflict, match="api id already identifies customer crm-ana"):
        admin.put_customer(ADMIN, "crm-copy", CustomerUpdate(external_ids={"api": ANA}))
    with pytest.raises(Conflict, match="email already identifies customer crm-ana"):
        admin.put_customer(ADMIN, "crm-copy", CustomerUpdate(email="Ana@Alpha.example"))
    assert Customers(world.store).find_by_requester(world.ctx, "email", "ANA@alpha.example").customer_id == (
        "crm-ana"
    )


def test_a_lookup_saved_lower_cased_by_an_earlier_release_finds_only_its_own_customer():
    world, _ = crm()
    # What an earlier release wrote for crm-ana: its lookup and its claim keyed by the lower-cased id.
    legacy = BOB  # == ANA.lower()
    world.store.transact(
        world.ctx,
        [
            Put(
                pk="T#acme#CUST#crm-ana",
                sk="REQ#ext:api",
                data={"customer_id": "crm-ana", "kind": "ext:api"},
                indexes={"GSI2PK": f"T#acme#REQ#ext:api#{legacy}", "GSI2SK": "crm-ana"},
            ),
            Put(pk=f"T#acme#IDENTITY#ext:api#{legacy}", sk="OWNER", data={"customer_id": "crm-ana"}),
        ],
    )
    world.store.delete(world.ctx, Delete(pk=f"T#acme#IDENTITY#ext:api#{ANA}", sk="OWNER"))
    customers = Customers(world.store)

    assert customers.find_by_requester(world.ctx, "ext:api", ANA).customer_id == "crm-ana"
    assert customers.claimant(world.ctx, "ext:api", ANA) == "crm-ana"
    # The lower-cased key names crm-ana, but its id is not Bob's.
    assert customers.find_by_requester(world.ctx, "ext:api", BOB) is None
    assert customers.claimant(world.ctx, "ext:api", BOB) is None


def test_two_helpdesk_requesters_whose_ids_differ_only_in_case_get_their_own_tickets_and_customers():
    world = make_world()
    intake = Intake(
        world.store,
        world.evidence,
        NoSecrets(),
        RecordingQueue(),
        world.audit,
        Once(),
        triage=lambda ctx, t, m: world.service.triage(ctx, t, m).model_dump(mode="json"),
    )
    api = TenantContext(tenant_id="acme", actor="api-key", via="api_key", roles=frozenset({"service"}))
    config = TenantConfigs(world.store).get(api)

    def customer_of(external_id: str) -> str:
        reply = intake.converse(
            api, config, text="How do I export a report?", requester=Requester(external_id=external_id)
        )
        return Tickets(world.store).get(api, reply.body["conversation_id"]).customer_id

    ana, bob = customer_of(ANA), customer_of(BOB)

    assert ana != bob
    assert customer_of(ANA) == ana  # the same requester again is the same customer
    customers = Customers(world.store)
    assert customers.get(api, ana).external_ids == {"api": ANA}
    assert customers.get(api, bob).external_ids == {"api": BOB}
