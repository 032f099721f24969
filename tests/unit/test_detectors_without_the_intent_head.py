"""Requests for a person that reached a customer-facing answer, or were kept from one only by the intent head (which
is allowed to let a message it calls out of scope through when it puts almost no weight on intents for a person):
an invoice the customer says is wrong, a request for the data held on a person, asking whether anyone is there. The
detectors, not the embeddings, must send them to a person; the how-tos that share their words must not be flagged."""

from __future__ import annotations

import re

import pytest

from deflect.domain.models import DecisionPolicy
from deflect.triage import detectors


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I think there's a mistake on our latest invoice — VAT was added even though our EU VAT ID has been "
        "on file for months. Can you correct it?",
        "There's an error in our March invoice, the seat count is wrong.",
        "We were charged sales tax although we're tax exempt.",
        "Tax was applied to this bill despite our exemption certificate.",
        "VAT added to our invoice despite our valid EU VAT number",
    ],
)
def test_an_invoice_the_customer_says_is_wrong_is_a_billing_matter(text):
    assert "billing" in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "Our finance team flagged invoice 10442 — the run credit overage amount doesn't match our usage page at "
        "all. We're disputing it and won't pay until it's corrected.",
        "We are disputing this month's bill.",
        "We will not pay this invoice until someone explains it.",
        "The total on the renewal doesn't add up.",
        "How do I set up a cron schedule? And could you knock 3 seats off our next invoice?",
        "Please take the unused seats off the next invoice",
        # Typed on a phone: ’ for the apostrophe.
        "We’re disputing it and won’t pay until it’s corrected.",
        "The overage amount doesn’t match our usage page.",
        "We will not pay for invoice 10442 until it's corrected",
        "We're withholding payment until this is fixed",
        "We won't be paying this invoice",
        "I'm not paying for this",
        "We do not intend to pay this invoice",
        "Our finance team disputes the March invoice",
        "We are going to dispute this bill",
        "The charges are inconsistent with our usage page",
        "The amount on the invoice is not what we agreed",
        "Can you take 3 seats off invoice 10442?",
        "Could you take the 3 seats we removed in March off our next invoice please?",
        "Please remove the overage charge from our invoice",
        "Could you reduce our next invoice by 3 seats?",
        "Please credit the 3 unused seats against our next invoice",
    ],
)
def test_a_disputed_or_withheld_payment_or_an_amount_taken_off_an_invoice_is_a_billing_matter(text):
    assert "billing" in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "We won't pay via credit card, can we get an invoice instead?",
        "We won't pay by SEPA, do you accept PayPal?",
        "We will not pay upfront - is monthly billing available?",
        "The deal amount doesn't match between HubSpot and Salesforce after the sync.",
        "The opportunity amount doesn't match in Salesforce, how do I map the currency field?",
        "The total row doesn't add up in the pivot table; how do I change the aggregation?",
        "The invoice total doesn't match the sum of the line items in the CSV export, which column should I use?",
        "Which charges do not reflect on the usage page until the next day?",
        "How do I take a user off the next invoice?",
        "How do I remove the PO number off the invoice?",
        "Can I take the tax off the invoice if we're tax exempt?",
        "Does the amount on the invoice include VAT?",
    ],
)
def test_paying_another_way_and_amounts_in_synced_data_are_how_tos(text):
    assert detectors.detect(text).sensitive_flags == []


@pytest.mark.parametrize(
    "text",
    [
        "One of our contacts has asked us for all the data we hold on them. Can you pull what Syncbeam has on "
        "m.rossi@example.com?",
        "A customer of ours wants everything you store about them.",
        "What information do you keep on this person? She asked us under Article 15.",
        "Please send all the records you have on j.doe@example.org.",
        "Send me all the data you hold about me.",
        "Tell me everything you have on me",
        "What do you store about us?",
    ],
)
def test_asking_for_the_data_held_on_a_person_is_a_privacy_request(text):
    assert "privacy" in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "How do I download my invoices?",
        "Is VAT added to invoices for EU customers?",
        "Where can I see the VAT on my invoice?",
        "How do I add our VAT ID so it shows on the invoice?",
        "I got an error with the invoice download button.",
        "What data does Syncbeam store about my contacts?",
        "How do I export everything about a beam?",
        "Which fields do you keep about a contact after a sync?",
        "Do you keep a copy of the records you sync?",
        "The run log shows errors in the mapping step.",
        "Is VAT added to invoices even though we're outside the EU?",
        "What do you store about us when we connect Google Sheets?",
        "How do I see everything the sync has on this contact?",
        "Can we pay by bank transfer instead? We won't pay by card.",
        "The record count doesn't match between Salesforce and HubSpot.",
        "How do I turn off the overage alerts on the billing page?",
        "What happens if a card payment fails at renewal?",
    ],
)
def test_how_tos_about_invoices_and_stored_data_raise_nothing(text):
    signals = detectors.detect(text)
    assert signals.sensitive_flags == []
    assert signals.requested_action.kind == "none"


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("I see sign-ins from a device I've never owned on my profile page.", "security"),
        ("There's a login from Brazil in our history that nobody on our team recognizes.", "security"),
        ("I just got a sign-in notification from an IP in a country I've never been to.", "security"),
        ("my account got locked after too many login attempts, please unlock it asap", "security"),
        (
            "We accidentally pushed one of our sbk_live_ keys to a public GitHub repo about an hour ago.",
            "security",
        ),
        (
            "one of our clients asked us to make sure their records are purged from all your run logs",
            "privacy",
        ),
        ("remove me from your systems. i never signed up for this", "privacy"),
        # Found reviewing the rules: other words for the same requests.
        ("There are sessions in our account from a device we don't own", "security"),
        ("I got an email about a new sign-in that wasn't me", "security"),
        ("My account is locked, I need it unlocked today", "security"),
        ("My account has been suspended, please reinstate it", "security"),
        ("Can you reset the lock on my account? It says too many attempts.", "security"),
        ("Our sbk_live key is in a public GitHub gist, can you revoke it?", "security"),
        ("A developer checked the production token into GitHub yesterday (repo is public).", "security"),
        ("Please delete all data about john@acme.com from your servers", "privacy"),
        ("I want all our records removed from SyncBeam's systems", "privacy"),
    ],
)
def test_requests_only_the_answer_threshold_kept_from_an_answer_are_flagged(text, flag):
    """`deflect eval triage --answer-thresholds 0` showed these answered from the help center once nothing but the
    answer's confidence stood in the way."""
    assert flag in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "Can I schedule a call with our account manager?",
        "Can I book a call with your support team?",
        "Can someone from your team give me a call?",
        "Can I get on a call with an engineer?",
    ],
)
def test_asking_for_a_call_with_someone_is_asking_for_a_person(text):
    assert detectors.detect(text).wants_human


@pytest.mark.parametrize(
    "text",
    [
        "Is there an outage? Every sync in all of our workspaces is failing with 503 errors.",
        "Every sync in all our workspaces has been failing since 9am, is something down?",
        "Nothing is syncing in any of our 14 workspaces. Is SyncBeam down?",
        "Syncs are failing in all workspaces since 9am.",
        "Hi, since this morning beams are failing in all 6 workspaces with SB-1042",
        "Runs keep failing in every workspace we have",
    ],
)
def test_every_sync_failing_in_all_our_workspaces_is_an_outage_for_many(text):
    signals = detectors.detect(text)
    assert signals.outage and signals.many_affected


@pytest.mark.parametrize(
    "text",
    [
        "If your service is down, do syncs in all workspaces retry automatically?",
        "During an outage, how do I pause the beams across multiple workspaces?",
        "How do I check whether the API is down for all workspaces or only one?",
        "What happens when syncs are failing in all workspaces?",
        "Can I see which beams are failing in all workspaces at once?",
        "If beams are failing in all workspaces, who gets the email alert?",
    ],
)
def test_questions_about_outages_in_general_are_not_an_outage_for_many(text):
    signals = detectors.detect(text)
    assert not (signals.outage and signals.many_affected)


def test_a_long_message_of_blank_lines_and_dots_still_gets_its_verdict():
    """A 20 kB email of blank lines once kept a privacy rule busy for about 20 s (every line break started a new
    scan to the end); the rule now anchors on one break at a time."""
    text = "\n" * 10_000 + "." * 10_000 + " remove me from your systems"
    assert "privacy" in detectors.detect(text).sensitive_flags


@pytest.mark.parametrize(
    "text",
    [
        "How do I see recent sign-ins on my profile page?",
        "How long are run logs kept before they're deleted from your systems?",
        "Are deleted records removed from the destination too?",
        "What happens if my account gets locked after too many attempts?",
        "How do I schedule a sync with HubSpot every hour?",
        "Where can I review sign-ins I don't recognise on my account?",
        "If there are logins we don't recognize in the audit log, how do I revoke them?",
        "How do I see failed logins we don't recognize in the audit log export?",
        "How do I configure session timeout? Our sessions never expire and we have never used SSO.",
        "Can you explain how to unlock a beam that is locked for editing?",
        "Could you tell me how to unblock my sync after it got paused?",
        "Our admin account was locked, can you tell me where the unlock setting is?",
        "I want to remove a connection from your platform, how?",
        "Can you tell me how long until deleted rows are removed from your backups?",
        "Can I set up a meeting sync with someone's Google Calendar?",
        "How do I book a meeting with a rep field mapped to the Salesforce owner?",
        "The synced invoices don't match between QuickBooks and HubSpot, how do I fix the mapping?",
        "Can you tell me how to take a user off the next invoice?",
        "Can I credit a customer against an invoice in the Xero sync?",
        "Can I copy a beam to all of our workspaces?",
    ],
)
def test_how_tos_about_sign_ins_retention_and_schedules_raise_nothing(text):
    signals = detectors.detect(text)
    assert signals.sensitive_flags == [] and not signals.wants_human


@pytest.mark.parametrize(
    "text",
    [
        "Is anyone actually reading these?",
        "is anybody there??",
        "Is there a real person on the other end?",
        "Is anyone listening to me",
        "Is anyone reading this at all??",
    ],
)
def test_asking_whether_anyone_is_there_is_asking_for_a_person(text):
    assert detectors.detect(text).wants_human


@pytest.mark.parametrize(
    "text",
    [
        "Is anyone able to see my beams?",
        "Is someone reading the run logs automatically?",
        "Is someone reading these logs automatically?",
    ],
)
def test_questions_about_who_can_see_or_read_things_are_not(text):
    assert not detectors.detect(text).wants_human


def test_both_families_are_flags_the_default_policy_always_escalates():
    always = DecisionPolicy().always_escalate_flags
    assert {"billing", "privacy"} <= set(always)


def _raises_a_signal(text: str) -> bool:
    """What sends a message to a person whatever the intent head says: a flag, an action or a request for a person."""
    signals = detectors.detect(text)
    return bool(signals.sensitive_flags or signals.actions or signals.wants_human)


@pytest.mark.parametrize(
    "text",
    [
        # A person, asked for in few or other words.
        "I need a human.",
        "Person please.",
        "How do I reach a human?",
        "What's your phone number?",
        "Could somebody from your team get back to me by phone?",
        "I'd rather discuss this with a person.",
        "Hand this over to a colleague of yours please.",
        "can u pass this to whoever handles billing on your side, id rather sort it with someone directly",
        "Could you put me in touch with someone from your sales team about an Enterprise quote?",
        "I'd like to speak with your billing department.",
        "can i get a call back? anytime after 2pm GMT",
        # Leaving.
        "How do I cancel?",
        "cancle my subscribtion",
        "Opt us out of the automatic renewal please.",
        "We won't be renewing. Please confirm.",
        "Please deactivate Syncbeam for our company.",
        "What scopes does HubSpot need? btw we'd like to cancel at the end of the year.",
        "dont renew us next month",
        # Money back, a payment method, a plan or an entitlement changed by support.
        "Can you send the $99 back to my Visa? We never ended up using the Team plan.",
        "refnd pls, i didnt mean to buy the yearly plan",
        "Don't make me go to my credit card company over this.",
        "so we'd like the unused portion of our annual plan returned to us.",
        "Remove my credit card.",
        "Take my Visa off the account, I don't want it stored with you anymore.",
        "Could you charge the outstanding invoice to a different card?",
        "Can you move our workspace from monthly to annual billing?",
        "drop us to the cheapest paid plan, business is overkill for what we do",
        "We need two more users on our subscription.",
        "Can we get SCIM enabled on our Business plan?",
        "Please unlock cron schedules for our account, we were promised them in the deal.",
        # Owner and sign-in address.
        "Please rename my login to j.smith@acme.example.",
        "The owner of our workspace passed away. How can we get control of it?",
        "need the owner role reassigned to our new CTO. the previous one is gone",
        "can you transfer our workspace 'northwind-sync' over to our parent company's account?",
        # Personal data, the law, a break-in.
        "Can you anonymize all the personal info tied to my login?",
        "I never signed up for Syncbeam, why do you have my email? Remove it.",
        "Export everything you store about me and send it to this address.",
        "I'm filing a complaint with the Better Business Bureau about how you handled this.",
        "your product overwrote 40k salesforce records. we are preparing a claim for damages",
        "Beams I never made are showing up in my workspace and exporting our contacts somewhere.",
        "Our account was used to export all contacts at 2am, nobody here did that.",
        "An employee we fired last week still appears to be signing in.",
        "Got an email about a new sign-in from Lagos. That wasn't me.",
        "I clicked a link in an email that looked like it came from you and entered my password. What now?",
        "Our intern shared the sbk_live token on Stack Overflow.",
        # From blind probes written after the first rules (two of them were answered from the help center).
        "Could a member of your technical team take a look at workspace acme-ops? Runs are stuck in 'queued'.",
        "Hi,\n\nWe've stopped using Syncbeam. Could you purge the synced records and run logs you keep for us?",
        "Can your solutions engineering team get on a Zoom with us this week?",
        "Please close our Team subscription effective immediately.",
        "I'm opening a PayPal case for this.",
        "could you move workspace 'growth-ops' down to the Free plan from next cycle? Thanks",
        "I'd like to pause our plan for two months over the summer.",
        "Retry payment please",
        "switch us to invoicing pls, our procurement doesnt allow cards",
        "Please use PayPal for future payments instead of the card.",
        "Hi, the workspace is registered under my personal Gmail. Can you move it to my work address?",
        "my login email has a typo (jonh@) can you fix it to john@",
        "erase everything. account, logs, all of it",
        "delete my user",
        "Who have you shared my data with? I want a list.",
        "Your sync overwrote 3,000 deal records in Salesforce. We will be seeking damages for the lost revenue.",
        "I got a sign-in alert from Lagos and I've never been there.",
        "Some of our Salesforce contacts are showing up in a HubSpot portal that isn't ours.",
        "sso settings got changed overnight, nobody touched them",
        "turn on the zendesk connector for us pls",
        "Reset our monthly run counter please, most of them were failed runs.",
        "Bitte übertragen Sie den Workspace an meinen Kollegen markus@firma.de.",
        "Ich werde mich bei der Datenschutzbehörde über Sie beschweren.",
    ],
)
def test_requests_only_the_intent_head_used_to_catch_now_raise_a_signal_of_their_own(text):
    """A tenant's own taxonomy may not weigh these the way the starter one does; the rules are the guarantee."""
    assert _raises_a_signal(text)


@pytest.mark.parametrize(
    "text",
    [
        "How do I cancel a run that's stuck in Queued?",
        "I'd like to cancel a transfer",
        "How do I leave a workspace I was invited to?",
        "Will any business take this card?",
        "Can a Business workspace pay by bank transfer instead of card?",
        "How do I update my credit card?",
        "If a renewal payment fails, is any of our data deleted?",
        "Someone needs to make me aware when there are extra charges; no one made me aware of this one.",
        "Why has a payment been returned?",
        "Can I sync a phone number field from HubSpot to Salesforce?",
        "How do I switch a beam to real-time mode?",
        "Does removing a teammate also revoke the API keys they created?",
        "Can you please identify the problem with my bank card?",
        "Can I use my card for payment all over the world?",
        "If the owner leaves, what's the process to reassign ownership? Just documenting it for our offboarding.",
    ],
)
def test_how_tos_that_share_those_words_raise_nothing_new(text):
    signals = detectors.detect(text)
    assert not signals.wants_human and "cancel_subscription" not in signals.actions
    assert not {"privacy", "security", "legal"} & set(signals.sensitive_flags)


def test_no_rule_lost_a_quantifier_to_an_f_string():
    """In an rf-string "{0,30}" is a Python tuple and the rule silently becomes "(0, 30)": a plan change written as
    "move workspace 'growth-ops' down to the Free plan" went unflagged that way."""
    patterns = [p for _kind, family in detectors._ACTIONS for p in family]
    patterns += [p for family in detectors._SENSITIVE.values() for p in family] + detectors._HUMAN
    assert not [p.pattern for p in patterns if re.search(r"\(\d+, \d+\)", p.pattern)]


@pytest.mark.parametrize(
    "text",
    [
        # Written by a reviewer against the rules above: each once raised a flag, an action or a request for a person.
        "Our team is new and nobody knows about the sb CLI — is there a tutorial?",
        "How do I put the amount back into the original field after renaming a column?",
        "I read that on the Team plan credits won't roll over — is that true for annual billing too?",
        "Cancel, pause or stop: which one keeps my beam's history?",
        "If a beam run is stuck, I want to cancel before it uses all the credits. How?",
        "Can I transfer it to someone else in the workspace, or only Owners can?",
        "Can you reverse the sync direction, or do I need a new beam?",
        "Can a beam send payments back from HubSpot to Pipedrive?",
        "How do I make sure an employee we let go can't log in any more?",
        "Features in the beta program can change — is that right?",
        "How do I filter out products we don't sell anymore from the HubSpot sync?",
        "Do I need a callback URL for the OAuth app?",
        "When record ownership changes, how do I assign records to me in the mapping?",
        "We decided to stop syncing the Notes object — how do I remove it from the mapping?",
        "Can anyone in finance look at invoices without being an Admin?",
        "Why does the phone number in Pipedrive lose its plus sign?",
        "How do I map the contact person field from Pipedrive to HubSpot?",
        "How do I reassign account ownership in Salesforce via the beam?",
        "How do I handle unknown members in a HubSpot list sync?",
        "How do I get rid of the Account lookup error in my Salesforce beam?",
        "How do I add users to my account?",
        "Can I pay annually instead of monthly?",
        "Where do I remove my old card after adding a new one?",
        "What does 'Unauthorized API key' mean?",
        "I copied the API key, where do I paste it in sb login?",
        "I need someone to review beams without editing them. Which role?",
        "Our HubSpot webhook subscription won't renew automatically; how do I re-register it?",
        "We're an insurer: can a beam sync the Damages Claim object from Salesforce?",
        "Nach dem 2FA-Code komme ich immer zurück zur Anmeldeseite, warum?",
        "What happens to beams created by a user who is removed? Do they change owner?",
    ],
)
def test_questions_about_how_things_work_in_the_rules_words_raise_nothing(text):
    """Rules for requests read only the sentences that ask support to act, not those that ask how something works."""
    assert not _raises_a_signal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Hi, how do I cancel?",
        "Hi, I need a human.",
        "Hi,\nupdate my card to the Amex ending 3005",
        "cancel my subscribtion",
        "Is there a person I can talk to about this?",
        "Who can I call about our account?",
        "Please have an engineer contact me today.",
        "Your bot keeps sending me docs. Let a human answer.",
        "Can you give us 10,000 more run credits this month?",
        "We'd like to move to Enterprise.",
        "Please switch our workspace owner to Tom.",
        "I want a copy of my data.",
        "There's an admin in our workspace nobody knows.",
        "Is it possible for you to send back the money for the march invoice?",
        "Payment failed again. Please retry it, the card has funds now.",
        "Have an engineer contact me.",
        "Are you able to remove my card from the account?",
        "Is there any way you could send the money back?",
    ],
)
def test_requests_after_a_greeting_or_asked_as_a_question_still_raise_a_signal(text):
    assert _raises_a_signal(text)


@pytest.mark.parametrize(
    "text",
    [
        # From a second review, aimed at how request sentences are told from questions.
        "Hi there, how do I remove my card?",
        "Dear Sir or Madam, how do I top up my credits?",
        "Can you tell me how to remove my card?",
        "Tell me how to remove my card.",
        "Say we want to cancel now, do we lose our run history?",
        "We reassign account owners every quarter; will the beam follow?",
        "We close our contract records in Salesforce when signed; can the beam pick that up?",
        "We track reimbursable expenses in a custom field; how do I map it?",
        "Het aantal contacten klopt niet na de sync.",
        "> You can add more credits from Billing\nThanks, that helps.",
        "We have SSO enabled on our Okta side; which SAML URL do we use?",
        "Could you rerun it? The 9am sync failed.",
        "Ich möchte die CLI upgraden, wie geht das?",
    ],
)
def test_how_tos_with_a_greeting_a_question_inside_or_about_crm_data_raise_nothing(text):
    assert not _raises_a_signal(text)


@pytest.mark.parametrize(
    "text",
    [
        "If you can't fix it today, cancel us.",
        "When you get a chance, please remove my card.",
        "Acme Inc. is leaving, please cancel us.",
        "please merge our\ntwo workspaces",
        "Do not charge my card again.",
        "Honestly I'd prefer to sort this out on a quick call with one of your support folks — is that possible this week?",
        "Vorrei che la disdetta fosse effettiva da subito, ho disdetto l'abbonamento.",
    ],
)
def test_requests_after_a_condition_an_abbreviation_or_a_line_break_raise_a_signal(text):
    assert _raises_a_signal(text)


def test_request_sentences_drop_greetings_and_questions_about_how_things_work():
    assert detectors.request_sentences(
        "Hi, how do I cancel? Also, please remove my card.\nCan you call me?"
    ) == [
        "please remove my card.",
        "Can you call me?",
    ]


@pytest.mark.parametrize("filler", [" ", "\u00a0", "\t", "\r\n", "\n"])
def test_a_trigger_word_before_20_kb_of_whitespace_still_gets_its_verdict(filler):
    """Two rules once tried every split of a whitespace run between two optional gaps (15 s on 20 kB)."""
    for word in ("reach", "close", "please"):
        assert not _raises_a_signal(word + filler * (20_000 // len(filler)))
    assert not detectors.instruction_like("how do i" + "\n" * 20_000)
