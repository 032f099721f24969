"""Deterministic detectors over a (redacted) customer message: requested action, sensitivity, wants-a-human,
sentiment, language, problem report, outage and impact language, and instruction-like text (prompt injection).

These run for every message whatever the model backend: policy relies on them, so a model can only ADD flags,
never remove one. They lean towards flagging: a false flag costs an agent a minute, a missed one can cost a
customer their money or data. Informational questions ("how do I download an invoice?") are not flagged;
requests and incidents are ("you charged me twice", "please downgrade us").

Rules are English first, each written for a family of phrasings (either word order, words between); the requests
that must reach a person (refund, cancellation, deletion, a person, a break-in, a lawyer) also have a few stems per
language (es, de, fr, pt, some it/nl), kept to forms that cannot mean cancelling a run or an API returning a value.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from deflect.domain.models import RequestedAction, bounded_amount


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Phones, mail clients and some keyboards type ’ or ´ for an apostrophe; the rules are written with '
# ("won't", "we're"). Only the rules read it so: language detection keeps the customer's own text.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'"})


def _plain(text: str) -> str:
    return text.translate(_APOSTROPHES)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _any_of(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """A family's patterns as one regex: one scan of the message instead of one per pattern (half the time on a
    long email). The lists stay separate to read and to comment."""
    return _rx("|".join(f"(?:{p.pattern})" for p in patterns))


# A rule marked with _ask reads only the sentences that ask support to act, not those that ask how something works:
# "Remove my credit card." and "Could you switch us to invoicing?" are requests; "Where do I remove my old card?",
# "Can I pay annually instead of monthly?" and "How do I add users to my account?" are how-tos. The older rules
# read the whole message and keep doing so.
_ASK = "(?#ask)"


def _ask(pattern: str) -> re.Pattern[str]:
    return _rx(_ASK + pattern)


class _Family:
    """A family's rules as two regexes: those read over the whole message and those read per request sentence.
    `crm_words`: the family's words are also CRM data ("owner", "contract", "Account", "refund amount"), so its
    request rules skip sentences about the customer's own apps, records and fields."""

    def __init__(self, patterns: list[re.Pattern[str]], *, crm_words: bool = False) -> None:
        whole = [p for p in patterns if not p.pattern.startswith(_ASK)]
        asked = [p for p in patterns if p.pattern.startswith(_ASK)]
        self.whole = _any_of(whole) if whole else None
        self.asked = _any_of(asked) if asked else None
        self.crm_words = crm_words

    def search(self, text: str, requests: list[str]) -> bool:
        if self.whole is not None and self.whole.search(text):
            return True
        if self.asked is None:
            return False
        return any(
            self.asked.search(sentence)
            for sentence in requests
            if not (self.crm_words and _ABOUT_DATA.search(sentence))
        )


# A greeting, thanks or a filler before the sentence's own words: "Hi there, how do I cancel?", "Dear Sir or Madam,
# …", "Thanks in advance, …", "Also, please remove …". A greeting runs to its first comma, dash or colon.
_GREETING = re.compile(
    r"^\W*+(?:(?:hi|hello|hey|hiya|dear|greetings|good (?:morning|afternoon|evening)|bonjour|hola|hallo|ol[áa]|ciao|"
    r"hoi|salut|buongiorno|buenos d[íi]as|guten (?:tag|morgen))\b[^,.!?\n:;—–-]{0,40}[,.!:;—–-]+"
    r"|(?:thanks|thank you|sorry|apologies|quick q(?:uestion)?|question|ok|okay|so|also|and|but|btw|by the way|p\.?s|"
    r"fyi|one more thing|actually|honestly|folks|guys|all)\b[^,.!?\n:;—–-]{0,25}[,.!:;—–-]+|(?:also|and|but|so|ok|okay|btw|"
    r"plus|p\.?s)\b)\s*",
    re.IGNORECASE,
)
# Asks how something works, what a policy says, or where a setting is: by its first words, by a question it carries
# ("Can you tell me how to remove my card?", "…, which field holds that?"), or as a supposition ("Say we cancel
# next year, …"). "Can/could/would/will you", "can someone", "can we/I get", "do you" and "is it possible for
# you" ask support to act or to give.
_HOW_TO = re.compile(
    r"^(?!is it possible for (?:you|your team)\b|would it be possible\b|are you (?:guys\s+)?able\b|is there (?:any )?(?:way|chance) "
    r"(?:you|your team)\b|may i ask\b)"
    r"(?:(?:how|where|what|which|why|when|who|whom|whose|is|are|was|were|does|did|should|shall|if|in case|once|"
    r"whether|suppose|supposing|assuming|say|let'?s say|hypothetically|in the event|even if|what if|imagine)\b(?!\s+(?:here|smith)\b)"
    r"|do\b(?!\s+(?:you|u)\s+(?!have\b)|\s+not\b|n'?t\b)"
    r"|(?:wie (?:kann|k[öo]nnen|mache|macht|geht|lange|viele?)|was (?:passiert|kostet|ist|sind|bedeutet)|wo (?:finde|kann|ist|sind)|"
    r"warum|wann|welche[rsnm]?|gibt es|kann ich|k[öo]nnen wir|d[óo]nde|c[óo]mo (?:puedo|hago|se|funciona)|qu[ée] (?:pasa|ocurre|es)|"
    r"cu[áa]ndo|por qu[ée]|puedo|o[ùu] (?:puis|est|sont|trouve)|comment|quand|pourquoi|est-ce que (?:je|nous|on)|puis-je|onde|"
    r"quando|posso|dove (?:posso|trovo|si|è)|come (?:posso|faccio|si|funziona)|perch[ée]|waar|hoe (?:kan|moet|werkt|doe)|wanneer|"
    r"waarom|kan ik)\b"
    r"|(?:can|could|may|might|will|would)\s+(?!(?:you|u|ya|someone|somebody|anyone|support|we get|i get|you guys|your|one of you|"
    r"a member of your|one of your|(?:anyone|anybody) (?:from|on|at|in) your)\b))"
    r"|\b(?:tell|show|explain to|walk)\s+(?:me|us)\b|\bexplain\s+(?:how|what|why|where|when|whether)\b"
    r"|\b(?:know|wondering|wonder|curious|idea|clue)\s+(?:how|where|what|when|whether|if|why|which)\b"
    r"|\bhow\s+(?:to|do|does|can|could|would|should|is|are|will)\b|\bwhere\s+(?:to|do|does|can|is|are)\b"
    r"|\bwhich\s+(?:field|setting|plan|role|beam|option|object|column|one|property|stage)\b|\bwhat\s+(?:happens|field|setting)\b"
    r"|(?:[,;:—–]|\s-)\s*(?:do|does|did|will|would|can|could|is|are|should)\s+(?:we|i|it|they|that|this|those|syncbeam|zendesk|hubspot|"
    r"salesforce|pipedrive|the \w+)\b(?!\s+(?:possible|ok|okay|alright))|\bwhich\s+\w+\b[^.?!]{0,40}\?"
    r"|\b(?:expliquez(?:-moi)?|explique(?:-moi)?|expl[íi]ca(?:me)?|spiegami|erkl[äa]ren sie|leg (?:me )?uit)\b|\bc[óo]mo\s+\w+r\b",
    re.IGNORECASE,
)
# A sentence about the customer's own apps, records and fields, not their account with us.
_ABOUT_DATA = re.compile(
    r"\b(?:fields?|objects?|pipelines?|property|properties|columns?|stages?|record type|records?|opportunit\w+|payload|"
    r"endpoint|mapping|tags?|newsletter|subscribers|crm|spreadsheets?|sheets?|webhooks?|json|array|response body)\b"
    r"|\b(?:in|from|into|to)\s+(?:salesforce|hubspot|pipedrive|zendesk|stripe|quickbooks|xero)\b"
    r"|\b(?:salesforce|hubspot|pipedrive|zendesk|stripe)\s+(?:accounts?|owners?|contracts?|deals?|contacts?|users?)\b",
    re.IGNORECASE,
)
# Abbreviations whose dot does not end a sentence: "Acme Inc. is leaving, please cancel us."
_ABBREVIATION = re.compile(
    r"\b(inc|ltd|corp|co|llc|gmbh|mr|mrs|ms|dr|st|no|vs|etc|approx|e\.g|i\.e|mon|tues?|wed|thu(?:rs?)?|fri|sat|sun|"
    r"jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.",
    re.IGNORECASE,
)
# Sentences end at . ! ? : … (a closing bracket or quote may follow; a semicolon joins a statement to its question),
# at a blank line, or before a list item; a single line break inside a sentence is a hard-wrapped email.
_SENTENCE = re.compile(r"(?<=[.!?:…？])[\"')\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
# "If you can't fix it today, cancel us.": a condition before the main clause; the main clause decides.
_CONDITION = re.compile(
    r"^(?:if|when|once|as soon as|after|before|unless|whenever|where possible|if possible)\b[^,]{1,80},\s*",
    re.IGNORECASE,
)


def request_sentences(text: str) -> list[str]:
    """The message's sentences that do not ask how something works, each without its greeting. Quoted lines ("> On
    Monday you wrote …") are not the customer's."""
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))
    text = _ABBREVIATION.sub(lambda m: m.group(1).replace(".", ""), text)
    out = []
    for sentence in _SENTENCE.split(text):
        sentence = " ".join(sentence.split())
        sentence = _GREETING.sub("", sentence, count=1)
        sentence = _CONDITION.sub("", sentence, count=1)
        if sentence and not _HOW_TO.search(sentence):
            out.append(sentence)
    return out


# --------------------------------------------------------------------------- requested actions

# Word families the action patterns share. A device that holds a second factor, what happens to it, and signs that the
# customer cannot sign in: "lost my phone" means nothing for billing, but next to "can't log in" it is an MFA reset.
_MFA = r"(?:2fa|mfa|two[- ]?factor|multi[- ]?factor|two[- ]step|authenticator|authy|otp|zwei-?faktor|doble factor|dois fatores|deux facteurs|double authentification)"
_DEVICE = r"(?:phone|iphone|android|mobile|cell ?phone|smartphone|device|authenticator(?: app)?|authy|yubikey|security key|hardware key|handy|telefon|m[oó]vil|celular|tel[eé]fono|telefone|t[eé]l[eé]phone|portable)"
_DEVICE_LOST = r"(?:lost|stolen|broke|broken|wiped|died|dead|gone|destroyed|deleted|uninstalled|smashed|cracked|factory[- ]reset|verloren|gestohlen|kaputt|weg|perd[ií]|perdido|robado|roubado|perdu|vol[eé])"
_SIGN_IN = r"(?:log ?in|sign ?in|sign-in|get (?:back )?in(?:to)?|access (?:my|our|the) account|locked out|codes?|2fa|mfa|two[- ]?factor|entrar|anmelden|connecter)"
_NO_LONGER = r"\b(?:no longer (?:have|access|use)(?: access to)?|(?:don'?t|do not|doesn'?t) have (?:access to )?(?:my|our|the)|can'?t (?:access|use|find) (?:my|our|the)|cannot (?:access|use|find) (?:my|our|the)|lost access to|without (?:my|our|the))\b"
_MFA_DEVICE = r"(?:authenticator|authy|yubikey|security key|hardware key|(?:2fa|mfa|two[- ]?factor) (?:device|app|phone|key|token))"
# Plan names written as names (capitalised) or followed by "plan"/"tier": "team" alone is too common a word.
_PLAN = r"(?:(?-i:Free|Starter|Basic|Standard|Team|Pro|Professional|Business|Premium|Growth|Scale|Enterprise)|(?:free|starter|basic|standard|team|pro|professional|business|premium|growth|scale|enterprise|paid)\s+(?:plan|tier|edition))"
# Objects of a data or account deletion in other languages (the verbs alone also delete runs and fields).
# A negation before "billed"/"charged": "not", "don't", "isn't", "never" (not the "nt" ending "want" or "account").
_NOT = r"(?:\bnot|\b(?:do|does|did|is|are|was|were|should|would|could|wo|ca|have|has|had|must)n'?t|\bnever)"
_ACCOUNT_OBJECT = r"(?:cuenta|conta|compte|konto|benutzerkonto|account|datos|dados|donn[ée]es|daten|dati|gegevens|perfil|profil|profilo|workspace|espacio de trabajo|espace de travail|arbeitsbereich|informaci[oó]n|informa[cç][aã]o)"

# Each action: the patterns that express it. Order matters: the first kind found is the structured action
# (a message asking to delete the account and refund is a deletion first; both flags are raised).
_ACTIONS: list[tuple[str, list[re.Pattern[str]]]] = [
    (
        "delete_account",
        [
            # The verb's object is the account itself ("close our company account"), not something removed from
            # it ("remove a teammate from our workspace", "delete a beam in my account").
            _rx(
                r"\b(?:delete|close|remove|terminate|erase|deactivate|wipe|nuke)\s+(?:(?!(?:from|in|on|of|to|at|inside|within|under|for|with)\b)[\w'-]+\s+){0,3}?(?:account|profile|workspace|organi[sz]ation|org)\b(?!\s+(?:settings?|page|menu|id|name|role|logo|icon|picture|photo|avatar|image|description|title|label|colou?r|theme|banner|time ?zone|language|url|link|members?|users?|invites?|admins?|api|keys?|tokens?|tags?|fields?|templates?|notifications?|e-?mails?|alerts?)\b)"
            ),
            _rx(
                r"\b(?:account|profile|workspace)\b[^.?!\n]{0,20}\b(?:deleted|closed|removed|erased|deactivated|terminated)\b"
            ),
            _rx(
                r"\b(?:delete|erase|remove|wipe|purge)\b[^.?!\n]{0,30}\b(?:all|every(?:thing)?)?\b[^.?!\n]{0,15}\b(?:my|our)\b[^.?!\n]{0,20}\b(?:data|information|records|details)\b"
            ),
            _rx(
                r"\b(?:delete|erase|remove|wipe|purge|scrub)\s+(?:me|my (?:user|login|profile|name|email|details|information))\b[^.?!\n]{0,30}\bfrom (?:your|the|all)\b[^.?!\n]{0,15}\b(?:system|database|records|platform|servers?|service)\b"
            ),
            _rx(
                r"\b(?:delete|erase|remove|wipe|purge|scrub|destroy)\s+(?:all|everything|anything)\b[^.?!\n]{0,40}\b(?:about|on|of|for|related to|tied to)\s+(?:me|us|my|our)\b|\bforget (?:me|us|everything about (?:me|us))\b"
            ),
            _rx(r"\bright to (?:be forgotten|erasure)\b"),
            _rx(
                rf"\b(?:borr(?:ar|en|e|a|ad[oa]s?)|elimin(?:ar|en|e|a|ad[oa]s?|ez|er|are)|l[öo]sch\w*|supprim\w*|exclu(?:ir|am|a|o|ído|ída)|apag(?:ar|uem|ue|a)|verwijder\w*|cancella(?:re|te|to)?)\b[^.?!\n]{{0,25}}\b{_ACCOUNT_OBJECT}\b"
            ),
            # The account or its data wanted gone in other words, which only the intent head had caught: "How do I get
            # rid of my account?", "our old test workspace needs to be deleted permanently", "purge everything
            # associated with workspace ws_1209".
            _rx(
                r"\bget rid of\s+(?:my|our)\s+(?:account|profile|workspace|org(?:ani[sz]ation)?)\b(?!\s+(?:field|lookup|object|records?|mapping|owner|page|settings?))"
            ),
            _ask(
                r"\b(?:account|workspace|profile)\b[^.?!\n]{0,40}\b(?:needs?|has|have)\s+to\s+be\s+(?:deleted|closed|removed|erased|wiped)\b"
            ),
            _ask(
                r"\b(?:purge|erase|wipe|delete|remove)\s+(?:all|everything)\b[^.?!\n]{0,20}\b(?:associated with|tied to|related to|belonging to)\s+(?:the\s+|our\s+|my\s+)?(?:workspace|account|org(?:ani[sz]ation)?)\b"
            ),
        ],
    ),
    (
        "refund",
        [
            _rx(r"\brefund(?:s|ed|ing)?\b"),
            _rx(r"\b(?:money|cash)\s+back\b"),
            _rx(r"\bcharge\s?-?backs?\b"),
            _rx(r"\breimburse(?:ment|d)?\b"),
            _rx(r"\b(?:reverse|revert|void|undo)\b[^.?!\n]{0,20}\b(?:charge|payment|transaction|invoice)\b"),
            _rx(
                r"\b(?:give|pay|send|return)\b[^.?!\n]{0,12}\b(?:me|us)\b[^.?!\n]{0,12}\b(?:back|my money|our money)\b"
            ),
            _rx(r"\bcredit\b[^.?!\n]{0,20}\b(?:back|to my card|to our card|my account|our account)\b"),
            _rx(r"\b(?:dispute|disputing)\b[^.?!\n]{0,20}\b(?:charge|payment|transaction|invoice)s?\b"),
            # Money wanted back, with words between: "we'd like the money for last month back", "the overcharge
            # paid back", "want the difference back".
            _rx(
                r"\b(?:want|like|need|get|getting|have|expect)\b[^.?!\n]{0,25}\b(?:money|fees?|payments?|charges?|amount|difference|funds|overcharge|overage)\b[^.?!\n]{0,30}\bback\b"
            ),
            _rx(
                r"\b(?:money|fees?|payments?|charges?|amount|difference|funds|overcharge|overage)\b[^.?!\n]{0,30}\b(?:paid|sent|put|given|credited|returned|refunded) back\b"
            ),
            # A chargeback in other words: a dispute opened with the bank or card, either word first.
            _rx(
                r"\b(?:disput\w*|chargeback|claw\w* back|revers\w*|contest\w*)\b[^.?!\n]{0,40}\b(?:bank|amex|american express|visa|mastercard|paypal|stripe|credit card (?:company|provider|issuer)|card (?:issuer|company|provider))\b"
            ),
            _rx(
                r"\b(?:bank|amex|american express|visa|mastercard|paypal|card (?:issuer|company|provider))\b[^.?!\n]{0,50}\b(?:disput\w*|chargeback|claw\w* back|revers\w*|contest\w*)\b"
            ),
            _rx(
                r"\b(?:open|opening|opened|file|filing|filed|raise|raising|raised|start|started|lodge|lodged|initiate|initiated|submit|submitted)\s+(?:a\s+|the\s+)?dispute\b|\bdispute\b[^.?!\n]{0,25}\b(?:i'?m|we'?re|i am|we are|i'?ve|we'?ve)\s+(?:opening|filing|raising|starting|opened|filed|raised)\b"
            ),
            _rx(r"\bcontest\w*\b[^.?!\n]{0,20}\b(?:charges?|payments?|invoices?|bills?|transactions?)\b"),
            _rx(r"\b(?:service|sla) credits?\b|\bcompensat(?:e|ed|es|ing|ion)\b"),
            # A credit, a waiver or compensation asked for in other words (the audit's "can you credit us for
            # yesterday's outage?", "give us a credit for the downtime"). "Credit" alone is also the product's run
            # credits and a credit card, so it needs a person as its object, a request verb with "a credit", a
            # money sense ("goodwill credit") or an outage it is for.
            _rx(
                r"\bcredit(?:ed|ing)?\s+(?:us|me|it|that|this|them|(?:our|my|the|this|that)\s+(?:\w+\s+)?(?:account|invoice|bill|card|overages?|charges?|fees?|difference|amount|months?))\b"
            ),
            _rx(
                r"\b(?:give|giving|issue|apply|get|want|need|like|request\w*|expect\w*|deserve|owe|owed|ask(?:ing)? for|claim\w*|offer|provide)\s+(?:(?:us|me)\s+)?(?:a|an|some|any)\s+(?:(?:small|partial|prorated|pro-?rated|full|one-?off|goodwill|courtesy|service|sla|account|billing|outage|downtime)\s+)?credit\b(?!\s*card)"
            ),
            _rx(r"\b(?:goodwill|courtesy|pro-?rated|partial|account|billing)\s+credits?\b"),
            _rx(
                r"(?<!\brun )(?<!\bapi )(?<!\busage )\bcredits?\b[^.?!\n]{0,25}\b(?:for|because of|due to|after|over|to cover)\b[^.?!\n]{0,30}\b(?:outages?|downtime|down ?time|incidents?|disruptions?|interruptions?|sla|breach|inconvenience|lost (?:time|runs|data|days?|hours)|(?:was|were|went|being) down)\b"
            ),
            _rx(
                r"\bwaiv(?:e|ed|es|ing|er)\b|\bcomp(?:ed)?\s+(?:us|me)\b|\bmake (?:it|this|that) up to (?:us|me)\b"
            ),
            _rx(
                r"\bmake (?:it|this|that|things) (?:right|good)\b[^.?!\n]{0,30}\b(?:discount|credit|free|money|compensat\w*)"
            ),
            _rx(
                r"\b(?:give|giving|offer|owe|get|want|need|like|expect\w*|deserve)\s+(?:(?:us|me)\s+)?(?:a|an|some)\s+(?:(?:small|partial|\d+ ?%)\s+)?(?:discount|free (?:month|week|day)s?)\b[^.?!\n]{0,40}\b(?:for|because of|due to|after|over|to make up)\b"
            ),
            _rx(
                r"\b(?:discount|free (?:month|week|day)s?)\b[^.?!\n]{0,25}\b(?:for|because of|due to|after|over|to make up for)\b[^.?!\n]{0,30}\b(?:outages?|downtime|down ?time|incidents?|disruptions?|interruptions?|sla|breach|inconvenience|trouble|(?:was|were|went|being) down)\b"
            ),
            # Not to be billed for a period or an outage: "make sure I'm not billed for next month", "don't charge
            # us for May". Not being billed from now on is a cancellation (below).
            _rx(
                rf"{_NOT}\s+(?:be(?:ing)?\s+|get(?:ting)?\s+|have to\s+)?(?:bill|charg|invoic)\w*\s+(?:(?:us|me|anything)\s+)?(?:for|on|in|during)\s+(?:the\s+|this\s+|that\s+|these\s+|those\s+|our\s+|my\s+)?(?:next|this|last|coming|current|upcoming|remaining|rest|month|week|year|quarter|period|cycle|renewal|days?|weeks?|months?|hours?|time|downtime|outage|incident|jan(?:uary)?|feb(?:ruary)?|march|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|\d)"
            ),
            _rx(
                rf"\b(?:please|pls|kindly|can you|could you|would you|(?<!how do i )(?<!how can i )(?<!how do we )(?<!how can we )(?:make sure|ensure))\b[^.?!\n]{{0,25}}{_NOT}\s+(?:be(?:ing)?\s+|get(?:ting)?\s+)?(?:bill|charg|invoic)\w*\s+(?:(?:us|me)\s+)?for\b"
            ),
            _rx(
                r"\b(?:shouldn'?t|should not|won'?t|will not|refuse to|not going to)\s+(?:have to\s+)?pay\s+for\b[^.?!\n]{0,30}\b(?:down|outage|downtime|broken|(?:didn'?t|did not|wasn'?t|was not) work\w*|not working|days?|weeks?|months?|hours?|time)\b"
            ),
            # Other languages: a credit note or compensation (de Gutschrift/Entschädigung, es compensación/nota de
            # crédito, fr dédommagement/geste commercial), a fee waived (de erlassen, es condonar), not to be billed
            # ("no nos cobren mayo", "ne nous facturez pas mai", "stellen Sie uns Mai nicht in Rechnung").
            _rx(
                r"\b(?:gutschrift|gutschreib\w*|gutgeschrieben|entsch[äa]dig\w*|kompensation|kompensier\w*|compensaci[oó]n|compens(?:ar|en|e|arnos|ennos)|indemnis(?:er|ez|ation|ations|é|ée)|d[ée]dommag\w*|geste commercial|bonificaci[oó]n|nota de cr[ée]dito|condon(?:ar|en|ación|acion|arnos|ad[oa]))\b"
            ),
            _rx(
                r"\bcr[ée]dit[oa]?s?\b[^.?!\n]{0,30}\b(?:ca[íi]da|interrupci[oó]n|incidente|panne|interruption|incident|ausfall|st[öo]rung)\b"
            ),
            _rx(
                r"\b(?:geb[üu]hr\w*|kosten|rechnung|betrag)\b[^.?!\n]{0,30}\berlass\w*|\berlass\w*\b[^.?!\n]{0,30}\b(?:geb[üu]hr\w*|kosten|rechnung|betrag)\b"
            ),
            _rx(
                r"\bno\s+(?:nos|me)\s+(?:cobr(?:en|e|es|éis)|factur(?:en|e|es|éis))\b|\bne\s+(?:nous|me|m')\s*(?:factur|d[ée]bit|pr[ée]lev)\w*\s+pas\b|\bne pas\s+(?:nous|me)\s+(?:factur|d[ée]bit|pr[ée]lev)\w*|\bnicht\s+(?:in rechnung|berechnen|abbuchen)\b|\b(?:berechn|abbuch)\w*\s+(?:sie\s+)?(?:uns|mir)\b[^.?!\n]{0,30}\bnicht\b"
            ),
            # Other languages: es/pt reembolso, estorno (pt), de Rückerstattung/erstatten, fr rembourser, it rimborso,
            # nl terugbetaling; "devolver" also means an API returns a value, so it needs the money named.
            _rx(
                r"\b(?:reembols|rembours|rimbors|estorn|r[uü]ckerstatt|erstatt|terugbetal|contracargo|r[uü]ckbuchung)\w*"
            ),
            _rx(
                r"\b(?:devol|devuel)\w*\b[^.?!\n]{0,25}\b(?:dinero|dinheiro|pago|pagamento|cobro|cobran[cç]a|importe|valor)\b|\b(?:dinero|dinheiro|argent)\b[^.?!\n]{0,10}\b(?:de vuelta|de volta|back)\b|\bgeld\b[^.?!\n]{0,40}\bzur[uü]ck\b|\bgeld terug\b"
            ),
            # Money wanted back with the verb first, an amount returned, or typed in a hurry: "send the $99 back to my
            # Visa", "send back the amount you took", "I want my 49 bucks returned", "refnd pls"; not paying for a
            # period already billed ("make it so we don't pay for this year"); a charge to be reversed; more stems per
            # language.
            _ask(
                r"\b(?:send|give|pay|put|wire|transfer)\w*\s+(?:us\s+|me\s+)?(?:the\s+|our\s+|my\s+|that\s+)?(?:[$€£]\s?\d[\d,.]*|\d[\d,.]*\s?(?:dollars|euros?|pounds|bucks|usd|eur|gbp)|money|amount|payments?|charges?|fees?)\s+back\b(?!\s+(?:to|from|into|in)\s+(?!(?:my|our|me|us)\b))"
            ),
            _ask(
                r"\b(?:send|give|pay)\w*\s+(?:us\s+|me\s+)?back\s+(?:the|our|my|that)\s+(?:money|amount|payments?|charges?|fees?)\b"
            ),
            _rx(r"\bget back\s+(?:the|our|my)\s+money\b|\bget\s+(?:my|our)\s+money\s+back\b"),
            _rx(
                r"\b(?:money|amount|payments?|dollars|euros?|pounds|bucks)\s+(?:be\s+)?(?:returned|repaid|refunded)\s+to\s+(?:my|our|me|us)\b"
            ),
            _ask(
                r"\bget back\s+(?:the|our|my)\s+(?:amount|payments?|fees?|charges?)\b(?!\s+(?:fields?|values?|columns?|property))"
            ),
            _ask(
                r"\b(?:unused|remaining)\s+(?:portion|part|months?|time|balance|amount|days)\b[^.?!\n]{0,40}\b(?:returned|refunded|back|credited|repaid)\b"
            ),
            # A charge the customer wants undone, said plainly: "i want that reversed".
            _ask(
                r"\b(?:want|need|like)\s+(?:the charge|the payment)\s+(?:reversed|refunded|undone|voided)\b"
            ),
            _rx(
                r"\b(?:charg\w*|payments?|invoiced?|billed)\b[^\n]{0,80}\b(?:want|need|like)\s+(?:that|this|it)\s+(?:reversed|refunded|undone|voided)\b"
            ),
            # A PayPal case opened, a payment to be booked back through the bank
            # ("laten terugboeken"), going through the bank to get it back.
            _ask(
                r"\b(?:open|opening|opened|file|filing|filed)\s+(?:a|an)\s+(?:paypal|bank|card)\s+(?:case|claim|dispute)\b"
            ),
            _ask(
                r"\bterugboek\w*|\b(?:go|going|went|get (?:it|this|that|my money|our money) back)\s+(?:through|via)\s+(?:my|our)\s+(?:bank|card issuer|credit card company)\b(?!\s+(?:card|account|app|transfer))"
            ),
            _ask(
                r"\b(?:want|need|like|expect|please)\b[^.?!\n]{0,30}(?:\b(?:money|amount|payments?|charges?|fees?|dollars|euros?|pounds|bucks)|[$€£]\s?\d[\d,.]*)\s+(?:\w+\s+)?(?:returned|repaid|paid back)\b"
                r"|\breturn\s+(?:the|our|my)\s+(?:[$€£]\s?\d[\d,.]*|\d[\d,.]*\s?(?:dollars|euros?)|money|payments?|charges?|fees?)"
                r"|\b(?:want|need|like)\s+(?:the|that|this|my|our)\s+(?:[$€£]?\s?\d[\d,.]*\s+)?(?:charge|payment|transaction)\s+(?:undone|reversed|refunded|voided)\b"
            ),
            _ask(
                r"\b(?:please|pls|can you|could you|kindly)\s+(?:repay|reverse|undo|void)\s+(?:(?:it|that|this)\b(?!\s+(?:sync|mapping|change|edit|beam|direction|field|example))|(?:the|our|my|this|that)\s+(?:\w+\s+)?(?:charges?|payments?|transactions?|invoices?|fees?|debits?)\b|us\b)"
            ),
            _ask(r"\b(?:refnd|refud|rfund|refound|refunf)\w*|\breimburse\s+(?:me|us)\b"),
            _ask(
                r"\b(?:don'?t|do not|not)\s+(?:have to\s+)?pay\s+for\s+(?:this|that|the|last|next|the current)\s+(?:year|month|renewal|period|invoice|charge|cycle)\b"
            ),
            _ask(
                r"\bzur[uü]ckerstatt\w*|\bzur[uü]ck(?:zahl|gezahlt)\w*|\br[uü]ckzahlung\w*|\bterug(?:stort|gestort|betaal|betaald)\w*"
            ),
            _ask(
                r"\b(?:devu[eé]lv(?:an|anme|annos|ame|anlo)|devolv(?:ernos|erme|ednos|edme))\b[^.?!\n]{0,25}\b(?:dinero|cargos?|cobros?|pagos?|importe)\b"
            ),
            _ask(
                r"\b(?:go|going|goes|turn|turning)\s+to\s+(?:my|our)\s+(?:credit card company|card (?:company|issuer|provider)|bank)\b(?!\s+(?:app|account|website|portal))|\bcontact\w*\s+(?:my|our)\s+(?:credit card company|card (?:company|issuer))\b"
            ),
        ],
    ),
    (
        "cancel_subscription",
        [
            _rx(
                r"\b(?:cancel+(?:ing|ed|ation)?|terminat(?:e|ing|ion)|end(?:ing)?|stop(?:ping)?|discontinu(?:e|ing))\b[^.?!\n]{0,40}\b(?:subscription|plan|membership|contract|account|renewal|service|billing|trial)\b"
            ),
            _rx(
                r"\b(?:subscription|plan|membership|contract|renewal)\b[^.?!\n]{0,25}\bcancel+(?:ed|led|ation)?\b"
            ),
            _rx(r"\b(?:unsubscribe|cancel+ation)\b"),
            _rx(r"\b(?:turn off|disable|stop)\b[^.?!\n]{0,15}\bauto-?\s?renew(?:al)?\b"),
            _rx(r"\bdo(?:n't| not) (?:want to )?renew\b"),
            # Leaving in other words: "end things with you", "part ways", "stop paying for it".
            _rx(r"\b(?:end things|part ways|call it quits|stop paying|stop being (?:charged|billed))\b"),
            _rx(r"\bstop\s+(?:bill|charg|invoic)\w*\s+(?:us|me|my|our)\b"),
            _rx(
                rf"{_NOT}\s+(?:be(?:ing)?\s+|get(?:ting)?\s+)?(?:billed|charged|invoiced)\s+(?:again|anymore|any more|after|from now|beyond|past)\b"
            ),
            _rx(
                r"\b(?:don'?t|do not|stop)\s+(?:bill|charg|invoic)\w*\s+(?:us|me)\b[^.?!\n]{0,20}\b(?:again|anymore|any more|after|from now|next)\b|\bno longer (?:want|need) (?:the|your|this) (?:service|product|subscription|tool)\b"
            ),
            # Other languages: de kündigen/Kündigung and fr résilier name a contract's end on their own; cancelar /
            # annuler also cancel a run, so they need the subscription named or a request ("quiero cancelar").
            _rx(r"\bk[uü]ndig\w*|\br[ée]sili(?:er|ez|ation|é|ée|ons)\b"),
            _rx(
                r"\b(?:cancel|annul|disdic|opzeg)\w*\b[^.?!\n]{0,25}\b(?:suscripci[oó]n|assinatura|abonnement|abo|plano?|plan|contrato|contrat|vertrag|servicio|servi[cç]o|abbonamento|cuenta|conta|compte)\b"
            ),
            _rx(
                r"\b(?:quiero|quisiera|queremos|quero|queria|gostaria de|deseo|deseamos|desejo|necesito|preciso|je veux|je voudrais|nous voulons|ich will|ich möchte|wir möchten|voglio|vorrei)\s+(?:cancelar|annuler|stornieren|cancellare|opzeggen)\b"
            ),
            # Leaving in fewer words or with typos: "How do I cancel?", "cancle my subscribtion", "Cancel us effective
            # immediately", "close out our subscription", "opt us out of the automatic renewal", "we won't be
            # renewing", "make sure our plan doesn't roll over", "please don't convert it" (a trial), "we want out of
            # the contract", "deactivate it for our company"; disdire (it) and opzeggen (nl) with the subscription
            # first. "How do I cancel?", "we'd like to cancel at the end of the year": cancelling with nothing named,
            # or only when. Cancelling a run, a transfer or a card is not leaving.
            _ask(
                r"\b(?:(?:i|we) (?:want|need|would like|wish) to|(?:i|we)'d like to|please|pls)\s+cancel\s*(?:[.!]|$|(?:now|today|please|pls|asap|immediately|right away|at the end|effective|this month|next month|at renewal)\b)"
            ),
            # Asked as a question, and still leaving: "How do I cancel?", "hi, how do I leave?".
            _rx(
                r"(?:^|[,.!?;:\n])[^\w\n]{0,20}how (?:do|can) (?:i|we) (?:cancel|quit|leave)\s*\?|\b(?:quit|leave)\s+[\w-]+\s*,?\s+(?:dont|don't|do not|no longer)\s+need\b"
            ),
            _ask(
                r"\b(?:cancle|cancl|canel|cansel)\w*\b[^.?!\n]{0,40}\b(?:subscri\w*|plan|membership|contract|account|renewal|service)\b|\bcancel+\b[^.?!\n]{0,30}\bsubscr(?!iption)\w+"
            ),
            # Not renewing without the apostrophe ("dont renew us"), leaving the product ("how do I quit syncbeam",
            # not "how do I leave a workspace"), and a bare imperative ("cancel cancel cancel").
            _ask(r"\bdo(?:n'?t| not)\s+(?:want to\s+)?(?:auto-?)?renew\b"),
            _ask(
                r"\bhow do (?:i|we) (?:quit|leave)\b(?!\s+(?:a|an|the|this|that|my|our)\s+(?:\w+\s+)?(?:workspace|team|beam|call|meeting|page|org\w*|group|channel|screen|wizard)s?\b)"
            ),
            _ask(
                r"^\W*+(?:please\s+)?cancel\s*+(?:[.!]|$|cancel\b|(?:us|me|it)\b|(?:everything|now|today|asap|immediately)\s*(?:[.!]|$))"
            ),
            _ask(r"\bcancel+\s+(?:us|me)\b|\bcancel+\s+(?:everything|it all)\s*(?:[.!]|$)"),
            _ask(
                r"\b(?:close|shut)\s+(?:(?:out|down|off)\s+)?(?:our|my)\s+(?:\w+\s+)?(?:subscription|membership|contract)\b|\bshut\s+(?:it\s+all|everything)\s+down\b|\bclose\s+everything\b|\b(?:will not|won'?t)\s+(?:be\s+)?continu\w*\s+(?:after|with|beyond)\b"
            ),
            _ask(r"\bopt\s+(?:us|me)\s+out\s+of\b[^.?!\n]{0,25}\b(?:renew\w*|subscription|billing|plan)\b"),
            _ask(
                r"\b(?:we|i)\s+(?:won'?t|will not|are not going to|aren'?t going to|am not going to)\s+(?:be\s+)?renew(?:ing)?\b|\b(?:we'?re|we are|i'?m|i am)\s+not\s+(?:going to\s+)?renew(?:ing)?\b"
            ),
            _ask(
                r"(?<!webhook )(?<!event )(?<!api )\b(?:plan|subscription|contract)\s+(?:doesn'?t|does not|won'?t|will not)\s+(?:renew|auto-?renew|roll over into)\b"
            ),
            _ask(
                r"\b(?:please\s+)?(?:don'?t|do not)\s+convert\s+(?:it|the trial|our trial|my trial)\b|\bdon'?t want to be (?:charged|billed)\s*(?:[.!?,;]|$|again\b|anymore\b|any more\b|after\b|next\b)"
            ),
            _ask(
                r"\b(?:want|need|like)\s+out\s+of\s+(?:the|our|this|my)\s+(?:contract|subscription|plan|agreement)\b"
            ),
            _ask(
                r"\b(?:decided|decision)\s+(?:not\s+to\s+(?:continue|renew)|to\s+(?:discontinue|leave|cancel|churn))\b"
            ),
            _ask(
                r"^\W*+(?:please\s+)?(?:deactivate|shut down|switch off)\s+[\w-]+\s+for\s+(?:our|my)\s+(?:company|organi[sz]ation|business|firm)\b"
            ),
            _ask(
                r"\b(?:i'?d like to|i want to|we want to|we'?d like to|time to)\s+(?:quit|leave)\s*(?:[.!?,]|$)"
            ),
            _ask(
                r"\bdisd(?:ire|ica|ico|icono|etto|iciamo)\b|\b(?:abonnement|contract|lidmaatschap)\b[^.?!\n]{0,30}\bopzeg\w*"
            ),
        ],
    ),
    (
        "reset_mfa",
        [
            _rx(
                r"\b(?:reset|remove|disable|turn off|bypass|recover|switch off)\b[^.?!\n]{0,30}\b(?:2fa|mfa|two[- ]factor|multi[- ]factor|two[- ]step|authenticator|otp)\b"
            ),
            _rx(
                r"\b(?:2fa|mfa|two[- ]factor|multi[- ]factor|two[- ]step|authenticator)\b[^.?!\n]{0,40}\b(?:reset|removed|disabled|lost|new phone|broken|locked|taken off|turned off|switched off|off my account)\b"
            ),
            _rx(
                r"\b(?:lost|broke|replaced|changed|new|moved to|switched to)\b[^.?!\n]{0,15}\b(?:phone|device|iphone|android|mobile|samsung|pixel)\b[^.?!\n]{0,60}\b(?:code|codes|2fa|mfa|authenticator|log ?in)\b"
            ),
            _rx(r"\b(?:lost|no longer have|don't have)\b[^.?!\n]{0,20}\b(?:recovery|backup) codes?\b"),
            # The device that holds the second factor is gone (either word first), and the message is about getting
            # in: "I lost my phone. How do I get back into my account?", "My Authy got deleted, how do I log in?"
            _rx(
                rf"(?:\b{_DEVICE_LOST}\b[^.?!\n]{{0,25}}\b{_DEVICE}\b|\b{_DEVICE}\b[^.?!\n]{{0,30}}\b{_DEVICE_LOST}\b)[^\n]{{0,100}}\b{_SIGN_IN}"
            ),
            _rx(
                rf"\b{_SIGN_IN}\b[^\n]{{0,100}}(?:\b{_DEVICE_LOST}\b[^.?!\n]{{0,25}}\b{_DEVICE}\b|\b{_DEVICE}\b[^.?!\n]{{0,30}}\b{_DEVICE_LOST}\b)"
            ),
            # No longer has the factor: "I can no longer access my 2FA device", "don't have my phone anymore".
            _rx(rf"{_NO_LONGER}[^.?!\n]{{0,15}}\b(?:{_MFA}|{_DEVICE})\b[^\n]{{0,100}}\b{_SIGN_IN}"),
            _rx(rf"{_NO_LONGER}[^.?!\n]{{0,15}}\b{_MFA_DEVICE}"),
            # The codes fail: "authenticator codes stopped working", "my 2FA codes keep getting rejected", "can't
            # get my sign-in codes anymore", "Google Authenticator didn't transfer".
            _rx(
                rf"\b(?:{_MFA}|sign-?in|log-?in|login|verification|security|one-time|six-digit|6-digit)\s+codes?\b[^.?!\n]{{0,40}}\b(?:stopped|don'?t work|doesn'?t work|not working|no longer|rejected|invalid|not accepted|wrong|expired|fail\w*|anymore)"
            ),
            _rx(
                rf"\bcan'?t (?:get|receive)\b[^.?!\n]{{0,15}}\b(?:{_MFA}|sign-?in|log-?in|login|verification)\s+codes?\b"
            ),
            _rx(
                rf"\b{_MFA}\b[^.?!\n]{{0,30}}\b(?:didn'?t|did not|won'?t|doesn'?t) (?:transfer|move|sync|carry over)"
            ),
            # Other languages: "Zwei-Faktor zurücksetzen", "restablecer el 2FA", "réinitialiser la double
            # authentification".
            _rx(
                rf"\b(?:zur[uü]cksetz|deaktivier|entfern|restablec|resete|desactiv|redefin|r[ée]initialis|d[ée]sactiv)\w*\b[^.?!\n]{{0,30}}{_MFA}|{_MFA}[^.?!\n]{{0,30}}\b(?:zur[uü]cksetz|deaktivier|entfern|restablec|resete|desactiv|redefin|r[ée]initialis|d[ée]sactiv)\w*"
            ),
            # German puts the particle last: "setzen Sie die Zwei-Faktor-Authentifizierung für mein Konto zurück".
            _ask(rf"\bsetz\w*\b[^.?!\n]{{0,60}}{_MFA}[^.?!\n]{{0,40}}\bzur[uü]ck\b"),
        ],
    ),
    (
        "change_email",
        [
            _rx(
                r"\b(?:change|update|switch|move|replace|transfer)\b[^.?!\n]{0,30}\b(?:e-?mail|login|username)\b(?:\s+address)?"
            ),
            _rx(r"\b(?:e-?mail|login)(?:\s+address)?\b[^.?!\n]{0,30}\b(?:changed|updated|switched|moved)\b"),
            _rx(r"\btransfer\b[^.?!\n]{0,30}\b(?:ownership|owner|account)\b"),
            _rx(
                r"\b(?:give|hand|pass|assign|move|change|switch)\w*\b[^.?!\n]{0,20}\b(?:ownership|owner rights)\b"
            ),
            _rx(r"\b(?:new|different)\b[^.?!\n]{0,10}\b(?:account )?owner\b"),
            _rx(r"\bmake\b[^.?!\n]{0,30}\b(?:the )?(?:account )?owner\b"),
            # Ownership handed on in other words: "put Maria in charge of the workspace", "hand over the account".
            _rx(
                r"\b(?:(?:put|make|leave|place)(?:\s+[\w'-]+){1,3}\s+in charge of|hand(?:s|ed|ing)? (?:it |this )?(?:over|off)|handover|take over|taking over|pass(?:ed|ing)? (?:it )?(?:on|over))\b[^.?!\n]{0,30}\b(?:workspace|account|organi[sz]ation|org|subscription)\b"
            ),
            # The sign-in email is gone (left the company, mailbox shut down): recovering the account means moving
            # it to another address, which only a person who has checked the customer's identity may do.
            _rx(
                r"\b(?:(?:my|our|his|her|their) (?:old|former|previous|deactivated|disabled)|(?:no longer (?:have|has|got)|lost|(?:can(?:no|')?t|unable to) (?:access|get into|get to)) (?:access to )?(?:my|our|his|her|their|the))(?:(?: (?:work|company|school|uni(?:versity)?|old))?(?: e-?mail| inbox| mailbox)| (?:work|company|school) address)\b"
            ),
            _rx(
                r"\b(?:e-?mail|inbox|mailbox)(?: address| account)?,?(?: (?:which|that))?\s+(?:(?:was|is|has been|have been|got)\s+)?(?:deactivated|disabled|shut down|deleted|closed)\b|\b(?:e-?mail|inbox|mailbox)(?: address| account)? (?:no longer exists|doesn'?t exist(?: anymore)?|is gone)\b"
            ),
            # Other languages: the account's email or owner changed ("cambiar el email de la cuenta").
            _rx(
                r"\b(?:cambiar|cambia|cambien|mudar|alterar|changer|modifier|[äa]ndern|actualizar|atualizar)\b[^.?!\n]{0,30}\b(?:e-?mail|correo|courriel|propietario|propri[ée]taire|propriet[aá]rio|dono|eigent[uü]mer|inhaber)\b|\b(?:eigent[uü]mer|inhaber|propietario|propri[ée]taire|propriet[aá]rio)\b[^.?!\n]{0,30}\b(?:[äa]ndern|cambiar|changer|mudar|alterar)\b"
            ),
            # The owner or the login address changed in other words: "nobody has owner rights anymore, please give
            # them to me", "I need to be made owner", "the owner role reassigned to our new CTO", "the owner passed
            # away / left and can't be reached", "change the owner of our account", "the email on my profile is wrong,
            # it should be …", "rename my login to …", "put the account under my new work address", "move our
            # workspace from my gmail to …", "transfer our workspace to our parent company's account", "merge our two
            # workspaces"; wijzigen (nl), transferir a propriedade (pt).
            _ask(
                r"\b(?:owner(?:ship)? rights|owner role|ownership)\b[^.?!\n]{0,60}\b(?:give|assign|transfer|move|reassign|hand)\w*\b[^.?!\n]{0,15}\b(?:to me|to us|them to)\b"
            ),
            _ask(r"\bmade\s+(?:the\s+)?(?:new\s+)?(?:workspace\s+|account\s+)?owner\b"),
            _ask(
                r"\bowner(?:ship)?(?: role| rights)?\b[^.?!\n]{0,40}\b(?<!process to )(?<!how to )(?<!how do i )(?<!how do we )(?<!how can i )(?<!how can we )(?:reassign|re-assign|transferr|moved|given|handed)\w*"
            ),
            _ask(
                r"\bowner\b[^.?!\n]{0,40}\b(?:passed away|died|left the company|left us|is gone|can'?t be reached|cannot be reached|unreachable|no longer (?:works|with))\b"
            ),
            _rx(
                r"\bchange\s+(?:the|our|my)\s+(?:account\s+|workspace\s+)?owner\b(?!\s+(?:field|of (?:a|the|each|every)\s+(?:deal|record|contact|lead|opportunit|ticket|account)))"
                r"|\b(?:switch|change|update|make|set)\s+(?:our|the|my)\s+(?:workspace\s+|account\s+)?owner\s+to\b"
            ),
            _ask(r"\b(?:e-?mail|login)\b[^.?!\n]{0,30}\b(?:is wrong|is incorrect|should be)\b"),
            _ask(r"\brename\s+(?:my|our)\s+(?:login|user ?name|e-?mail)\b"),
            _ask(
                r"\b(?:account|workspace|login)\b[^.?!\n]{0,15}\bunder\s+(?:my|our|a|the)\s+(?:new\s+)?(?:work\s+|company\s+|personal\s+)?(?:address|e-?mail|login)\b"
            ),
            _ask(
                r"\bmove\s+(?:our|my|the)\s+(?:workspace|account)\s+(?:from|over to)\b|\b(?:workspace|account)\s+moved\s+to\b(?!\s+(?:a|my|our)\s+(?:different|new|other)\s+(?:e-?mail|address|account|login)\b)"
            ),
            _ask(r"\btransfer\s+(?:our|my|the|this)\s+(?:workspace|account|org(?:ani[sz]ation)?)\b"),
            _rx(
                r"\b(?:workspace|account)\s+moved\s+to\s+(?:a|my|our)\s+(?:different|new|other)\s+(?:e-?mail|address|account|login)\b"
            ),
            _ask(r"\bmerge\s+(?:our|my|the)\s+(?:two\s+|\d+\s+)?(?:workspaces|accounts)\b"),
            # "move this workspace to my colleague's account", "swap the owner email", "reassign the workspace to
            # another account".
            _ask(r"\bmove\s+(?:this|that)\s+(?:workspace|account)\s+(?:from|over to|to)\b"),
            _ask(r"\b(?:swap|change|update|switch)\s+(?:the\s+)?owner(?:'s)?\s+(?:e-?mail|login|address)\b"),
            _ask(r"\breassign\s+(?:the\s+|our\s+|this\s+|my\s+)?(?:workspace|account|org\w*)\b"),
            # "move it to my work address", "move the 'sales-sync' workspace to our other account", "I need the owner
            # changed", "swap the owner and admin roles", "my login email has a typo", "set my manager as owner", "the
            # workspace moved under …"; übertragen (de).
            _ask(
                r"\bmove\s+it\s+(?:over\s+)?to\s+(?:my|our|a|the)\s+(?:new\s+|other\s+)?(?:work\s+|company\s+)?(?:address|e-?mail|account|login)\b"
            ),
            _ask(
                r"\bmove\s+(?:the|our|my|this)\s+(?:'[^'\n]{1,40}'\s+|\"[^\"\n]{1,40}\"\s+|[\w-]+\s+)?workspace\s+(?:to|over to|under)\b"
            ),
            _ask(
                r"\bowner\s+(?:changed|switched|updated|moved|transferred)\b|\bswap\b[^.?!\n]{0,20}\bowner\b"
            ),
            _ask(
                r"\b(?:login|account|sign-?in)\s+e-?mail\b[^.?!\n]{0,30}\b(?:typo|misspel\w*|wrong|incorrect)\b"
            ),
            _ask(
                r"\bset\s+(?:\w+\s+){1,3}as\s+(?:the\s+)?(?:new\s+)?owner\b|\bworkspace\b[^.?!\n]{0,25}\bmoved\s+(?:under|over)\b"
            ),
            _ask(
                r"\b[üu]bertrag\w*\b[^.?!\n]{0,30}\b(?:workspace|konto|eigentum|inhaber\w*)\b|\b(?:workspace|konto)\b[^.?!\n]{0,30}\b[üu]bertrag\w*"
            ),
            _ask(
                r"\bwijzig\w*\b[^.?!\n]{0,30}\be-?mail\w*|\be-?mailadres\b[^.?!\n]{0,30}\bwijzig\w*|\btransf\w+\b[^.?!\n]{0,25}\bpropriedade\b"
            ),
        ],
    ),
    (
        "change_plan",
        [
            # Upgrading the CLI, an app or a connector version is not a plan change.
            _rx(
                r"\b(?=(?:up|down)grad)(?<!\bcli )(?<!\bsdk )(?<!\bapp )(?<!\bapi )(?<!\bos )(?<!\bversion )(?<!\bsoftware )(?<!\bsystem )(?<!\bbrowser )(?<!\bconnector )(?<!\bplugin )(?<!\bpackage )(?<!\blibrary )(?<!\bdriver )(?<!\bserver )"
                r"\b(?:upgrad|downgrad)(?:e|es|ed|ing)\b(?!(?:(?!\b(?:plan|tier|subscription|seats?|us|account|workspace)\b)[^.?!\n]){0,30}?\b(?:cli|sdk|apps?|versions?|client|library|package|connectors?|browser|node|python|os|macos|windows|linux|plugin|extension|driver|binary|tool)\b)"
            ),
            _rx(
                r"\b(?:change|switch|move|modify|convert|downsiz\w*|upsiz\w*|scale (?:down|up|back)|step (?:down|up))\b[^.?!\n]{0,30}\b(?:plan|tier|subscription|package|billing cycle|billing period|seats?|licen[cs]es?)\b"
            ),
            _rx(
                r"\b(?:add|remove|reduce|increase|decrease|more|fewer|extra)\b[^.?!\n]{0,15}\b(?:seats?|licen[cs]es?|users? to (?:my|our) (?:plan|subscription))\b"
            ),
            _rx(
                r"\b(?:go|move|switch)\b[^.?!\n]{0,20}\b(?:to|onto)\b[^.?!\n]{0,10}\b(?:annual|yearly|monthly)\b"
            ),
            _rx(r"\b(?:extend|extension)\b[^.?!\n]{0,20}\btrial\b"),
            # A plan named as where the account should go: "knock us down to the Team plan", "bump us up to
            # Business", "from Team to Business", "get the Business plan", "be on the Enterprise tier".
            _rx(
                rf"\b(?:(?:us|me|our (?:workspace|account|team|org|plan|subscription)|the (?:workspace|account)|it)|(?:we|i|to|please|can|could)\s+(?:go|move|drop|step|switch|come|get))\s+(?:down|up|back|over)\s+(?:on)?to\s+(?:the\s+|our\s+|a\s+)?{_PLAN}"
            ),
            _rx(rf"\b(?:us|me|our (?:workspace|account|team|org))\s+off\s+(?:the\s+)?{_PLAN}"),
            _rx(rf"\bfrom\s+(?:the\s+)?{_PLAN}(?:\s+(?:plan|tier))?\s+(?:to|onto)\s+(?:the\s+)?{_PLAN}"),
            _rx(
                rf"\b(?:get|buy|purchase|order|subscribe to|sign up for|(?:like|want|need|wish) to be on|put us on)\s+(?:the\s+|a\s+|our\s+)?{_PLAN}(?!(?:\s+(?:plan|tier|edition))?\s+(?:features?|trial|customers?|users?|docs?|documentation|pricing|prices?)\b)"
            ),
            # Other languages: "cambiar al plan Team", "passer au plan Business", "Tarif wechseln".
            _rx(
                r"\b(?:cambiar|cambio|cambiamos|pasar|passer|mudar|wechseln|umstellen|changer)\b[^.?!\n]{0,15}\b(?:plan|plano|tarif|abo|abonnement|piano)\b"
            ),
            # A plan, cycle or seat count changed by support in other words: "move our workspace from monthly to
            # annual billing", "reduce/lower our plan", "drop us to the cheapest paid plan", "put us back on monthly
            # billing", "two more users on our subscription", "put our workspace on the Enterprise tier", "pay yearly
            # instead of monthly", "we want to move to Enterprise", "move us from Team down to Free", "apply the plan
            # we paid for"; downgraden (nl), passare (it). Asked as a question, and still a change: "Can we pay yearly
            # instead of monthly from now on?", "How do I pay annually instead?"
            _rx(
                r"\bpay\s+(?:yearly|annually|monthly)\s+instead of\s+\w+\s+(?:from now on|going forward|starting)\b|\bhow do (?:i|we) pay\s+(?:yearly|annually|monthly)\s+instead\s*\?"
            ),
            _ask(
                r"\b(?:go|move|switch)\b[^.?!\n]{0,40}\bfrom\s+(?:monthly|annual|yearly)\b[^.?!\n]{0,15}\bto\s+(?:monthly|annual|yearly)\b"
            ),
            _ask(r"\b(?:reduce|lower|drop|cut|shrink)\s+(?:our|my|the)\s+(?:plan|subscription|tier)\b(?!'s)"),
            _ask(
                r"\b(?:drop|move|put|switch|bump|knock|take)\s+(?:us|me)\s+(?:down\s+|up\s+|back\s+)?(?:to|onto)\s+(?:the\s+)?(?:cheapest|lowest|highest|next|free|paid|a cheaper|a smaller|a bigger|a higher|a lower)\b"
            ),
            _ask(
                r"\bput\s+(?:us|me|our (?:workspace|account|team|org))\s+(?:back\s+)?on\s+(?:the\s+|a\s+)?(?:monthly|annual|yearly)\b"
            ),
            _ask(
                rf"\bput\s+(?:our (?:workspace|account|team|org)|the (?:workspace|account))\s+on\s+(?:the\s+|a\s+)?{_PLAN}|\b(?:switch|move|put|change)\s+(?:our|my|the)\s+(?:workspace|account|team|org)\s+(?:over\s+)?to\s+(?:the\s+)?{_PLAN}"
            ),
            _ask(
                r"\b(?:more|extra|additional|another|\d+|two|three|four|five|ten)\s+(?:more\s+)?(?:users?|seats?|licen[cs]es?)\s+(?:to|on)\s+(?:my|our)\s+(?:plan|subscription)\b"
            ),
            _ask(
                r"\b(?:we|i|us to)\s+pay\s+(?:yearly|annually|monthly)\s+instead\b(?!\s+of\s+\w+\s+(?:from now on|going forward|starting))|\b(?:yearly|annual|annually|monthly)\s+(?:billing\s+)?instead of\s+(?:yearly|annual|annually|monthly)\b"
            ),
            _ask(
                rf"\b(?:we|i)(?:\s+(?:want|need|would like)|'d like)\s+to\s+(?:move|go|switch|upgrade|downgrade|change)\s+(?:us\s+)?(?:up\s+|down\s+|over\s+)?(?:to|onto)\s+(?:the\s+)?{_PLAN}"
            ),
            _ask(
                rf"\bfrom\s+(?:the\s+)?{_PLAN}(?:\s+(?:plan|tier))?\s+(?:down|up|back)\s+(?:to|onto)\s+(?:the\s+)?{_PLAN}"
            ),
            _ask(
                r"\b(?:apply|activate|give us|switch on)\s+the\s+(?:plan|upgrade|tier)\s+(?:we|i)\s+(?:paid|bought|purchased)\b"
            ),
            _ask(
                r"(?<!\bcli )(?<!\bapp )(?<!\bsdk )\b(?:up|down)grad(?:en|et)\b(?![^.?!\n]{0,30}\b(?:cli|app|sdk|version|client)\b)|\bpassare\b[^.?!\n]{0,30}\b(?:piano|abbonamento)\b"
            ),
            # A billing cycle moved, usage added to the plan, or the subscription updated, by support: "our billing
            # cycle changed to align with our fiscal year", "5,000 more run credits per month added to our plan".
            _ask(
                r"\bbilling (?:cycle|period|date)\b[^.?!\n]{0,20}\b(?:changed|moved|aligned|adjusted|switched)\b"
            ),
            # "move workspace 'growth-ops' down to the Free plan", "increase our included runs", "switch us to
            # quarterly", "move our billing date", "pause our plan for two months"; von Business auf Team (de).
            _ask(
                rf"\bmove\s+(?:our\s+|the\s+|my\s+)?workspace\b[^.?!\n]{{0,30}}?\s(?:(?:down|up|over|back)\s+)?to\s+(?:the\s+)?{_PLAN}"
            ),
            _ask(
                r"\b(?:increase|raise|bump|up)\s+(?:our|my|the)\s+(?:included|monthly)\s+(?:runs|credits|usage|records|seats|limit)\b"
            ),
            _ask(
                r"\b(?:switch|move|put)\s+(?:us|me)\s+(?:over\s+)?to\s+(?:quarterly|monthly|annual|yearly)\b|\bmove\s+(?:our|my|the)\s+billing (?:date|cycle|day)\b"
            ),
            _ask(
                r"\bpause\s+(?:our|my|the)\s+(?:plan|subscription|account|billing|membership)\b|\b(?:change|move|switch)\s+(?:our|my|the)\s+billing (?:date|cycle|day|period)\b"
            ),
            _ask(
                rf"\bvon\s+{_PLAN}\s+auf\s+{_PLAN}|\btarif\b[^.?!\n]{{0,40}}\b(?:umstellen|wechseln|[äa]ndern)\b"
            ),
            _ask(
                r"\b(?:more|extra|additional)\s+(?:run\s+)?credits\b[^.?!\n]{0,40}\b(?:added to|to|on)\s+(?:our|my)\s+(?:plan|subscription|account)\b"
            ),
            _ask(
                r"\b(?:please|pls|can you|could you|kindly)\s+(?:update|adjust|modify)\s+(?:the|our|my)\s+(?:subscription|plan)\b"
            ),
        ],
    ),
    (
        "change_entitlement",
        [
            # A feature or limit the plan does not give, asked for on a promise or by name: "our rep said it would be
            # included", "unlock the Business features for us", "raise our API rate limit" (not "the limit of rows").
            _rx(
                r"\b(?:sales ?reps?|reps?|account manager|account executive|salesperson|sales team|sales)\b[^.?!\n]{0,40}\b(?:promised|agreed|offered|said (?:it|we|this|that) would|told us)\b"
            ),
            _rx(rf"\b(?:unlock|grant|give us|give me)\s+(?:the\s+)?{_PLAN}\s+features?\b"),
            _rx(
                r"\b(?:raise|increase|bump|lift|extend)\s+(?:our|my)\b[^.?!\n]{0,25}\b(?:limits?|quota|retention|concurrent runs|credits)\b"
            ),
            # Support asked to switch a feature on for the account ("could you enable the audit log for our
            # workspace"), not how to do it oneself; or a feature asked for outside the plan ("as a one-off").
            _rx(
                r"\b(?:could|can|would|will) you(?: please| kindly| guys| folks)?\s+(?:enable|turn on|switch on|unlock|activate|add)\b[^.?!\n]{0,40}\b(?:for (?:us|me|our|my)|(?:on|to|in) (?:our|my) (?:account|workspace|plan|team|org(?:ani[sz]ation)?|subscription))\b"
            ),
            _rx(
                r"\b(?:enable|turn on|switch on|unlock|activate|give us access to|let us use)\b[^.?!\n]{0,60}\b(?:as a one-?off|as an exception|for free|at no (?:extra )?(?:cost|charge)|even though we(?:'re| are) on)\b"
            ),
            # A feature, a limit or credits asked of support for the account: "can we get SCIM enabled on our plan?",
            # "please unlock cron schedules for our account, we were promised them", "bump our monthly run credit
            # allowance", "a higher API rate limit on our account", "give us 3 extra concurrent runs", "add 50k extra
            # credits", "can you set that up on our account?", "get our workspace into your beta program"; erhöhen
            # (de), liberar (pt).
            _ask(
                r"\bget\s+(?:\w+\s+){1,2}(?:enabled|turned on|unlocked|activated)\s+(?:on|for)\s+(?:our|my)\b"
            ),
            _ask(r"\bunlock\b[^.?!\n]{0,40}\bfor\s+(?:our|my|us)\b|\b(?:we|i)\s+(?:were|was)\s+promised\b"),
            _ask(r"\b(?:raise|increase|bump|lift|extend)\s+(?:our|my)\b[^.?!\n]{0,25}\ballowance\b"),
            _ask(
                r"\b(?:higher|bigger|larger)\s+(?:api\s+)?(?:rate limit|limit|quota)\s+(?:on|for)\s+(?:our|my)\b"
            ),
            _ask(
                r"\b(?:give|add|grant)\s+(?:us|me)\s+(?:\d[\d,.]*k?|a few|some|more)\s+(?:extra\s+|more\s+|additional\s+)?(?:concurrent runs|(?:run\s+)?credits|seats|days)\b|\badd\s+(?:\d[\d,.]*k?|some|more)\s+(?:extra\s+|more\s+|additional\s+)?(?:run\s+)?credits\b|\btop\s+up\s+(?:our|my)\s+(?:run\s+)?credits\b"
            ),
            _ask(
                r"\b(?:can|could) you\s+(?:set (?:that|this|it) up|configure (?:that|this|it)|do (?:that|this))\s+(?:on|for)\s+(?:our|my)\s+(?:account|workspace)\b"
            ),
            _rx(
                r"\b(?:into|join|in)\s+(?:your|the)\s+beta(?:\s+program(?:me)?)?\b[^.?!\n]{0,30}\b(?:so (?:we|i)|please)\b|\b(?:get|put|add)\s+(?:us|our workspace|our account)\s+(?:in|into|on)\s+(?:your|the)\s+beta\b"
            ),
            _ask(
                r"\b(?:limit|kontingent|credits)\b[^.?!\n]{0,40}\berh[öo]h\w*|\bliberar\b[^.?!\n]{0,20}\bcr[ée]ditos\b"
            ),
            # "please enable the Zendesk connector on our Free workspace", "please turn on cron schedules for us", "we
            # were told in the demo that we'd get priority support", "increase the API rate limit for workspace
            # acme-prod", "our contract says unlimited seats".
            _ask(
                r"\b(?:please|pls|kindly)\s+(?:enable|turn on|switch on|unlock|activate)\b[^.?!\n]{0,40}\b(?:on|for|in)\s+(?:our|my|us)\b"
            ),
            _ask(
                r"\b(?:we|i)\s+(?:were|was)\s+(?:told|promised)\b[^.?!\n]{0,40}\b(?:we'?d|we would|would (?:get|have|be)|included|free)\b"
            ),
            _ask(
                r"\b(?:raise|increase|bump|lift|extend)\s+(?:the|our|my)\s+(?:api\s+)?(?:rate limit|limit|quota)\b[^.?!\n]{0,30}\b(?:for|on)\s+(?:our|my|workspace|us)\b"
            ),
            _ask(r"\b(?:our|the)\s+contract\s+says\b"),
            # "turn on the zendesk connector for us", "the API rate limit increased to 600", "enable beta access",
            # "give us some free credits", "we were told at the webinar that Team customers could get audit logs",
            # "increase max records per run to 500k", "allow more than 3 workspaces on our plan", "reset our monthly
            # run counter"; aumentar o limite (pt).
            _ask(
                r"\b(?:turn on|enable|switch on|unlock|activate)\b[^.?!\n]{0,40}\bfor\s+(?:us|me)\b(?!\s+to\b)"
            ),
            _ask(
                r"\b(?:limit|quota|cap|retention|allowance|credits)\s+(?:increased|raised|bumped|lifted|extended)\b"
            ),
            _ask(
                r"\b(?:enable|grant|give us|get us|get)\s+beta access\b|\b(?:give|grant|send)\s+(?:us|me)\s+(?:some\s+)?(?:free|extra|bonus|more)\s+(?:credits|runs|months?)\b"
            ),
            _ask(r"\b(?:were|was)\s+told\b[^.?!\n]{0,60}\b(?:could|would|can)\s+(?:get|have)\b"),
            _ask(
                r"^\W*+(?:please\s+)?(?:increase|raise|bump|lift|extend)\s+(?:the\s+|our\s+|my\s+)?(?:max|maximum|limit|quota|cap|retention|number)\b"
            ),
            _ask(
                r"\baumentar\b[^.?!\n]{0,30}\blimite\b|\ballow\s+(?:us\s+)?more\s+than\b|\breset\s+(?:our|my|the)\s+(?:monthly\s+)?(?:run\s+)?(?:counter|usage|credits|quota)\b"
            ),
        ],
    ),
]

# Amounts: "$120", "120 USD", "€49.50", "49,50 EUR", "30 pounds".
_CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
_CURRENCY_WORDS = {
    "dollar": "USD", "dollars": "USD", "usd": "USD", "bucks": "USD",
    "euro": "EUR", "euros": "EUR", "eur": "EUR",
    "pound": "GBP", "pounds": "GBP", "gbp": "GBP", "quid": "GBP",
    "cad": "CAD", "aud": "AUD", "chf": "CHF", "jpy": "JPY", "yen": "JPY", "inr": "INR", "rupees": "INR",
}  # fmt: skip
_NUMBER = r"\d{1,3}(?:[,\s]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT_SYMBOL = re.compile(rf"([$€£¥₹])\s?({_NUMBER})")
_AMOUNT_CODE_AFTER = re.compile(rf"\b({_NUMBER})\s?({'|'.join(_CURRENCY_WORDS)})\b", re.IGNORECASE)
_AMOUNT_CODE_BEFORE = re.compile(rf"\b(usd|eur|gbp|cad|aud|chf|jpy|inr)\s?({_NUMBER})\b", re.IGNORECASE)

_PLAN_NAMES = _rx(
    r"\b(free|starter|basic|standard|team|pro(?:fessional)?|business|premium|growth|scale|enterprise)\b(?:\s+(?:plan|tier))?"
)


def _decimal(text: str) -> Decimal | None:
    cleaned = text.replace(" ", "")
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?", cleaned):
        cleaned = cleaned.replace(",", "")
    elif re.fullmatch(r"\d+,\d{1,2}", cleaned):
        cleaned = cleaned.replace(",", ".")  # 49,50 EUR
    else:
        cleaned = cleaned.replace(",", "")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


# A minus sign right before an amount ("-5 USD", "-$5"), not a hyphen after a word or number ("10-15 USD").
_MINUS_BEFORE = re.compile(r"(?<!\w)[-\u2212\u2013]\s?\Z")


def _signed(text: str, start: int, amount: Decimal) -> Decimal:
    # Only the few characters before the amount: a long message must not be searched once per amount in it.
    return -amount if _MINUS_BEFORE.search(text, max(0, start - 3), start) else amount


def find_amount(text: str) -> tuple[Decimal | None, str | None]:
    """The first money amount in the text with its ISO currency, or (None, None). Signed as written: "-5 USD" is
    -5 (requested_action drops it), not a refund of 5."""
    found: list[tuple[int, Decimal | None, str]] = []
    for m in _AMOUNT_SYMBOL.finditer(text):
        found.append((m.start(), _decimal(m.group(2)), _CURRENCY_SYMBOLS[m.group(1)]))
    for m in _AMOUNT_CODE_AFTER.finditer(text):
        found.append((m.start(), _decimal(m.group(1)), _CURRENCY_WORDS[m.group(2).lower()]))
    for m in _AMOUNT_CODE_BEFORE.finditer(text):
        found.append((m.start(), _decimal(m.group(2)), m.group(1).upper()))
    found = [f for f in found if f[1] is not None]
    if not found:
        return None, None
    start, amount, currency = min(found, key=lambda f: f[0])
    return _signed(text, start, amount), currency  # type: ignore[arg-type]


def requested_action(text: str, actions: list[str] | None = None) -> RequestedAction:
    """The account-changing action the customer asks for (or asks how to do), as a structured object.
    `actions`: all_requested_actions(text), when the caller has it (each pattern then runs once per message)."""
    found = actions if actions is not None else all_requested_actions(text)
    if not found:
        return RequestedAction()
    kind = found[0]
    action = RequestedAction(kind=kind)  # type: ignore[arg-type]
    if kind == "refund":
        # customer text: an amount outside the bounds an approver could submit (ActionInput) is dropped, so
        # triage never fails on it and never proposes it for a one-click approval
        amount, currency = bounded_amount(*find_amount(text))
        action = action.model_copy(update={"amount": amount, "currency": currency})
    elif kind == "change_plan":
        plans = [m.group(1).lower() for m in _PLAN_NAMES.finditer(text)]
        action = action.model_copy(update={"target": plans[-1] if plans else None})
    elif kind == "change_email" and re.search(r"\bowner(?:ship)?\b", text, re.IGNORECASE):
        action = action.model_copy(update={"target": "owner"})
    return action


# Actions whose words are also CRM data: "We reassign account owners every quarter", "our contract records".
_CRM_WORDS = frozenset(
    {"change_email", "cancel_subscription", "change_plan", "change_entitlement", "refund", "delete_account"}
)
_ACTION_MATCHERS = [(kind, _Family(patterns, crm_words=kind in _CRM_WORDS)) for kind, patterns in _ACTIONS]


def all_requested_actions(text: str, requests: list[str] | None = None) -> list[str]:
    """`requests`: request_sentences of the plain text, when the caller has them (detect reads them once)."""
    text = _plain(text)
    requests = request_sentences(text) if requests is None else requests
    return [kind for kind, family in _ACTION_MATCHERS if family.search(text, requests)]


# --------------------------------------------------------------------------- sensitivity

# A person data is held about: an address, a third person, "this person". `_ASKER` adds the customer themselves,
# only where all of it is asked for ("all the data you hold on me"): "what do you store about us when we connect
# Sheets?" is a question about the product, and "the contact" is what the product syncs.
_PERSON = r"(?:[\w.+-]+@[\w-]+\.[\w.]+|them|him|her|(?:this|that|the) (?:person|individual|data subject))\b"
_ASKER = rf"(?:me|us|{_PERSON})"

_SENSITIVE: dict[str, list[re.Pattern[str]]] = {
    "billing": [
        _rx(
            r"\b(?:charged|billed|debited|invoiced|took|taken)\b[^.?!\n]{0,40}\b(?:twice|double|two times|again|wrong|incorrect|too much|extra|more than|without|after (?:i )?cancel+ed|unexpected(?:ly)?|by mistake|in error)\b"
        ),
        _rx(
            r"\b(?:double|duplicate|unexpected|unauthori[sz]ed|wrong|incorrect|extra|surprise|hidden|mystery)\b[^.?!\n]{0,15}\b(?:charges?|payments?|billing|invoices?|fees?|transactions?)\b"
        ),
        _rx(r"\bover-?(?:charg|bill)(?:e|ed|ing)?\b"),
        _rx(
            r"\b(?:charges?|payments?|transactions?|debits?|bills?)\b[^.?!\n]{0,40}\b(?:don'?t|do not|didn'?t|did not|never|can'?t)\s+(?:recogni[sz]e|authori[sz]e|make|order|remember)"
        ),
        _rx(r"\b(?:didn'?t|did not|never)\b[^.?!\n]{0,20}\b(?:authori[sz]e|agree to|sign up for|order)\b"),
        _rx(
            r"\b(?:waive[ds]?|waiving|waiver|discount|coupon|credit note|price match|cheaper price|special price)\b"
        ),
        _rx(r"\bdouble[- ]?(?:billed|charged|billing|charging)\b"),
        _rx(
            r"\b(?:invoice|receipt)\b[^.?!\n]{0,30}\b(?:wrong|incorrect|mistake|error|fix|change|re-?issue|correct)\b"
        ),
        _rx(
            r"\b(?:change|update|fix|correct)\b[^.?!\n]{0,30}\b(?:vat|tax id|billing address|company name) on\b"
        ),
        _rx(r"\b(?:still being|keep getting|kept getting|was|were|got)\s+(?:charged|billed)\b"),
        _rx(r"\bpayment\b[^.?!\n]{0,20}\b(?:dispute|disputed|chargeback)\b"),
        # The error named before the invoice ("a mistake on our latest invoice", not "an error with the invoice
        # download"), and tax charged in spite of an exemption the customer says applies ("VAT was added even though
        # our VAT ID is on file").
        _rx(
            r"\b(?:mistake|error|wrong|incorrect|discrepanc\w*)\b[^.?!\n]{0,25}\b(?:on|in|with)\s+(?:\w+\s+){0,3}(?:invoice|bill|receipt)s?\b(?!\s+(?:download|button|page|tab|screen|settings|pdf|link|e-?mail))"
        ),
        _rx(
            r"\b(?:vat|tax|taxes|sales tax|gst)\b[^.?!\n]{0,40}\b(?:was|were|has been|have been|got|is being|are being)\s+(?:added|charged|applied|included|billed)\b[^.?!\n]{0,40}\b(?:even though|although|despite|though|but (?:we|i))\b"
        ),
        # The same without the auxiliary, on the customer's own invoice: "VAT added to our invoice despite …".
        _rx(
            r"\b(?:vat|tax|taxes|sales tax|gst)\s+(?:added|charged|applied|billed)\s+(?:to|on)\s+(?:our|my)\b[^.?!\n]{0,40}\b(?:even though|although|despite|though)\b"
        ),
        # A dispute in the customer's own words, payment withheld, or an amount that does not match: "We're
        # disputing it and won't pay until it's corrected", "the overage amount doesn't match our usage page". Only
        # the answer threshold had kept the first from a help-center answer. Paying by another method, or on another
        # cycle, is a how-to: "we won't pay by card", "we will not pay upfront".
        _rx(
            r"\b(?:we'?re|we are|i'?m|i am|we'?ll be|we will be|we have to be)\s+(?:formally\s+)?disputing\b"
        ),
        _rx(
            r"\bdisput(?:e|es|ed|ing)\b[^.?!\n]{0,25}\b(?:invoices?|bills?|charges?|payments?|renewals?|overages?)\b"
        ),
        _rx(
            r"\b(?:won'?t|will not|refuse to|not going to|aren'?t going to|are not going to|can'?t be expected to|(?:do|does) not intend to|don'?t intend to)\s+pay\b"
            r"(?!\s+(?:by|with|via|using|through|in|upfront|up front|annually|yearly|monthly|quarterly|in advance|online|automatically)\b)"
        ),
        _rx(r"\bwithh(?:old|olding|eld)\s+(?:the\s+|our\s+|my\s+|any\s+)?payments?\b"),
        _rx(
            r"\b(?:not|won'?t be|will not be|aren'?t|are not|isn'?t)\s+paying\s+(?:this|that|it|the|our|for (?:this|that|it))\b"
            r"(?!\s+(?:by|with|via|using|through|monthly|annually|yearly|upfront)\b)"
        ),
        # An amount that does not match: on an invoice, a bill or a charge, or against what the customer was told
        # (their usage page, quote, contract or plan). "The deal amount doesn't match between HubSpot and
        # Salesforce" is a sync question: a CRM's amounts and totals are data, not the customer's bill.
        _rx(
            r"\b(?:invoices?|invoiced|bills?|billed|charges?|charged|overages?|renewal)\b[^.?!\n]{0,40}\b(?:doesn'?t|does not|don'?t|do not|didn'?t|did not)\s+(?:match|add up|line up)\b"
            r"(?![^.?!\n]{0,60}\b(?:line items?|csv|export|column|pdf|between|mapping|map|sync\w*)\b)"
        ),
        _rx(
            r"\b(?:doesn'?t|does not|don'?t|do not|didn'?t|did not)\s+(?:match|add up|line up)\b[^.?!\n]{0,30}\b(?:usage page|usage|quote|contract|(?:our|my|the) plan|what we (?:agreed|were (?:told|quoted)))\b"
        ),
        _rx(
            r"\b(?:invoices?|bills?|charges?|amount (?:on|of) (?:the|our|my|this) invoice)\b[^.?!\n]{0,30}\b(?:is|are|was|were)\s+(?:different from|inconsistent with|not what we (?:agreed|were (?:told|quoted)))\b"
        ),
        # Money taken off an invoice, asked of support: "could you knock 3 seats off our next invoice?". "How do I
        # take the PO number off the invoice?" asks how to edit a document.
        _rx(
            r"\b(?:could|can|would|will) you\b(?!\s+(?:please\s+)?(?:tell|explain|show|let me know))[^.?!\n]{0,60}\b(?:knock|take|shave|cut|deduct|remove|strike|drop)\b[^.?!\n]{0,60}\b(?:off|from)\s+(?:of\s+)?(?:our|my|the|this|your|next month'?s|(?:our|my) next month'?s)?\s*(?:next\s+|last\s+|latest\s+|current\s+|upcoming\s+)?(?:invoices?|bills?|renewal|charges?)\b"
        ),
        _rx(
            r"\bplease\b[^.?!\n]{0,40}\b(?:knock|take|shave|cut|deduct|remove|strike|drop)\b[^.?!\n]{0,60}\b(?:off|from)\s+(?:of\s+)?(?:our|my|the|this|your|next month'?s)?\s*(?:next\s+|last\s+|latest\s+|current\s+|upcoming\s+)?(?:invoices?|bills?|renewal|charges?)\b"
        ),
        _rx(r"\b(?:reduce|lower|discount)\b[^.?!\n]{0,25}\b(?:invoice|bill|renewal)\b[^.?!\n]{0,15}\bby\b"),
        _rx(
            r"\bcredit\b[^.?!\n]{0,40}\bagainst\s+(?:our|my)\s+(?:next\s+|last\s+|current\s+|upcoming\s+)?(?:invoice|bill|renewal)s?\b"
        ),
        # A payment method for support to remove or swap ("remove my credit card", "take my Visa off the account"), a
        # wrong invoice in two sentences ("Invoice INV-55102 says Business but we're on Team. This is wrong."), fraud
        # alleged, and double charges or wrong amounts in es, fr and nl.
        _ask(
            r"\b(?:remove|delete|drop|erase)\s+(?:my|our|the|this)\s+(?:old\s+|saved\s+|stored\s+|current\s+|expired\s+)?(?:credit card|debit card|card|visa|mastercard|amex|payment method)\b(?!\s+(?:field|column|number field|details field))"
        ),
        _ask(r"\btake\s+(?:my|our|the)\s+(?:\w+\s+)?(?:card|visa|mastercard|amex)\s+off\b"),
        _rx(r"\binvoice\b[^\n]{0,80}\b(?:this is|that'?s|it'?s|which is)\s+(?:wrong|incorrect|not right)\b"),
        _ask(
            r"\b(?:fraud|fraudulent|scam|scammed)\b(?!\s+(?:flag|field|score|check|detection|column|property|rule|filter|team))"
            r"|\bthe\s+amount\s+(?:is|was)\s+(?:wrong|incorrect)\b[^.?!\n]{0,60}\b(?:invoice|bill|charge|refund|difference|credit)"
        ),
        # A card to update, swap, charge or stop charging, asked of support, or another way to pay from now on:
        # "Update billing card to the one ending 7788", "can you swap it for me?", "could you charge the outstanding
        # invoice to a different card?", "don't charge my Mastercard again", "can u run the payment again", "split
        # this month's payment across two cards", "pay by invoice from now on". "How do I update my card?" stays a
        # how-to.
        _ask(
            r"(?:^|[.!?]\s+|\b(?:please|pls|can you|could you|would you|kindly)\s+)(?:update|swap|replace|change|switch|remove|delete)\s+(?:the\s+|our\s+|my\s+|this\s+)?(?:billing\s+|saved\s+|old\s+)?(?:card|credit card|debit card|payment method|visa|mastercard|amex)\b"
        ),
        # The card may be named a sentence before: "The card on file expired … Can you swap it for me?"
        _rx(
            r"\b(?:card|visa|mastercard|amex|payment method)\b[^\n]{0,100}\b(?:can|could|would)\s+(?:you|u)\s+(?:please\s+)?(?:swap|replace)\s+(?:it|that|this)\b"
        ),
        _ask(r"\b(?:can|could|would)\s+(?:you|u)\s+(?:please\s+)?charge\s+(?:the|our|my|it|this|that)\b"),
        _ask(
            r"\b(?:don'?t|do not|stop)\s+charg\w*\s+(?:my|our|the)\s+(?:card|visa|mastercard|amex|credit card|account)\b"
        ),
        _ask(
            r"\b(?:can|could|would)\s+(?:you|u)\s+(?:please\s+)?(?:run|retry|re-?run|process|try)\s+(?:the\s+)?(?:failed\s+)?(?:payment|charge)\b"
        ),
        _rx(
            r"\b(?:payment|charge|card)\b[^\n]{0,80}\b(?:please|pls|can you|could you)\s+(?:retry|re-?try)\s+it\b"
        ),
        _ask(r"\bsplit\b[^.?!\n]{0,30}\bpayments?\b[^.?!\n]{0,20}\b(?:cards|two|methods)\b"),
        _ask(
            r"\b(?:i|we)\s+(?:want|need|would like|'d like|wish)\s+to\s+pay\s+by\s+(?:invoice|bank transfer|wire)\b|\bpay\w*\s+by\s+(?:invoice|bank transfer|wire)\b[^.?!\n]{0,40}\b(?:from now on|going forward)\b"
        ),
        # A payment to retry, a card to charge or swap, another way to pay: "Retry payment please", "switch us to
        # invoicing", "move us to paying by SEPA direct debit", "swap it for the AmEx … and charge this month's
        # invoice to it", "Charge the overdue invoice to the card now", "use PayPal for future payments", "put the
        # outstanding balance on my mastercard"; belasten Sie (de), supprimer ma carte (fr).
        _ask(r"(?:^|[.!?]\s*)(?:please\s+)?retry\s+(?:the\s+)?payment\b|\bretry payment please\b"),
        _ask(
            r"\b(?:switch|move|put|change)\w*\s+(?:us\s+|me\s+)?(?:over\s+)?to\s+(?:paying by\s+)?(?:invoice|invoicing|bank transfer|wire|sepa|direct debit|paypal|ach)\b"
        ),
        _ask(
            r"\bswap\s+it\s+for\s+(?:the|my|our|a|an)\s+(?:new\s+)?(?:\w+\s+)?(?:card|visa|mastercard|amex)\b|\bcharge\s+(?:this|the|our|that)\s+(?:\w+'?s?\s+)?(?:invoice|balance|payment)\s+to\b|^\W*+(?:please\s+)?charge\s+(?:the|our|my|this)\b"
        ),
        _ask(
            r"\buse\s+(?:paypal|(?:the|my|our)\s+(?:new\s+|other\s+)?(?:card|visa|mastercard|amex))\s+(?:instead|for (?:all\s+)?(?:future|upcoming|the next|next|this month'?s|the renewal|renewals?))\b"
        ),
        _ask(
            r"\bput\s+(?:the\s+)?(?:outstanding\s+|remaining\s+|overdue\s+)?(?:balance|invoice|charge|amount|payment)\s+on\s+(?:my|our|the)\b"
        ),
        _ask(
            r"\bbelasten sie\b|\bsupprim\w*\s+(?:ma|notre|la)\s+carte\b|\bpasser\s+(?:à|a)\s+la\s+facturation par virement\b"
        ),
        _ask(
            r"\bcobr\w*\s+(?:dos veces|doble)\b|\bd[ée]bit[ée]s?\s+deux fois\b|\bconteste?\w*\b[^.?!\n]{0,20}\b(?:pr[ée]l[èe]vement|facture|paiement|d[ée]bit)\b|\btwee keer gefactureerd\b|\bverkeerd\w*\s+bedrag\b"
        ),
    ],
    "security": [
        _rx(
            r"\b(?:hack(?:ed|er|ers)?|compromis(?:ed|e)|breach(?:ed)?|phishing|malware|ransomware|exploit(?:ed)?|vulnerabilit(?:y|ies)|zero-?day)\b"
        ),
        _rx(
            r"\b(?:unauthori[sz]ed|suspicious|unknown|strange|unrecogni[sz]ed)\b[^.?!\n]{0,20}\b(?:access|log-?ins?|sign-?ins?|activity|sessions?|devices?|users?|api calls?)\b"
        ),
        _rx(r"\bsomeone\b[^.?!\n]{0,40}\b(?:logged|log|signed|accessed|got into|changed|using|has access)\b"),
        _rx(r"\b(?:xss|csrf|sql injection|rce|remote code execution|privilege escalation|ssrf|idor)\b"),
        _rx(
            r"\b(?:security (?:issue|bug|flaw|hole|incident|problem|concern|report)|responsible disclosure|bug bounty|pen ?test(?:ing)?)\b"
        ),
        _rx(
            r"\b(?:leak(?:ed)?|exposed|stolen|published)\b[^.?!\n]{0,30}\b(?:api keys?|tokens?|credentials?|passwords?|secrets?|keys?|data)\b"
        ),
        _rx(
            r"\b(?:api keys?|tokens?|credentials?|passwords?|secrets?)\b[^.?!\n]{0,30}\b(?:leak(?:ed)?|exposed|stolen|public|committed|pushed)\b"
        ),
        _rx(r"\blocked out\b"),
        # A key that ended up somewhere public, named in the same message: "How do I rotate an API key? One of
        # ours ended up on Pastebin."
        _rx(
            r"\b(?:api keys?|keys?|tokens?|credentials?|passwords?|secrets?|sbk_\w+)\b[^\n]{0,100}\b(?:ended up|got out|posted|pasted|shared|leaked|visible|exposed|published)\b[^.?!\n]{0,30}\b(?:public|github|gitlab|gist|pastebin|stack ?overflow|twitter|reddit|discord|forum|screenshot|online|internet)\b"
        ),
        # The key named after the verb ("we pushed one of our sbk_live_ keys to a public GitHub repo"), or said to
        # be somewhere public ("our sbk_live key is in a public GitHub gist").
        _rx(
            r"\b(?:pushed|committed|posted|pasted|published|uploaded|checked in)\b[^.?!\n]{0,40}\b(?:api keys?|keys?|tokens?|credentials?|passwords?|secrets?|sbk_\w+)\b[^.?!\n]{0,40}\b(?:public|github|gitlab|gist|pastebin|forum|online|internet)\b"
        ),
        _rx(
            r"\b(?:api keys?|keys?|tokens?|credentials?|secrets?|sbk_\w+)\s+(?:is|are|was|were|ended up|got)\s+(?:now\s+)?(?:in|on)\s+(?:an?\s+|the\s+)?public\b"
            r"|\bchecked\b[^.?!\n]{0,40}\b(?:keys?|tokens?|credentials?|secrets?|sbk_\w+)\s+into\s+(?:an?\s+|the\s+|our\s+)?(?:public\s+)?(?:github|gitlab|repo|repository)\b"
        ),
        # Sign-ins the customer reports and does not recognise ("I see sign-ins from a device I've never owned",
        # "a login from Brazil that nobody on our team recognizes", "a new sign-in that wasn't me"). Asking where
        # to review unknown sign-ins is a how-to.
        _rx(
            r"(?<!do )(?<!can )(?<!could )(?<!where )\b(?:i|we)\s+(?:just\s+)?(?:see|saw|found|noticed|got|received|spotted|can see)\b[^.?!\n]{0,40}\b(?:sign-?ins?|log-?ins?|logins?|sessions?)\b[^.?!\n]{0,50}\b(?:(?:i|we)(?:'ve| have)? never (?:owned|been to|seen)|(?:i|we) (?:don'?t|do not|didn'?t|did not) recogni[sz]e|unknown|unrecogni[sz]ed|unfamiliar|strange|suspicious)\b"
        ),
        _rx(
            r"(?<!if )(?<!whether )\bthere(?:'s| is| was| are| were)\s+(?:an?\s+|some\s+)?(?:new\s+)?(?:sign-?ins?|log-?ins?|logins?|sessions?)\b[^.?!\n]{0,60}\b(?:(?:nobody|no one)\b[^.?!\n]{0,25}\brecogni[sz]es?|(?:i|we) (?:don'?t|do not|didn'?t|did not) (?:recogni[sz]e|own)|(?:i|we)(?:'ve| have)? never (?:owned|seen|been to))\b"
        ),
        _rx(
            r"\b(?:sign-?in|log-?in|login|session)\b[^.?!\n]{0,30}\b(?:that|which)\s+(?:wasn'?t|was not)\s+(?:me|us|one of us)\b"
        ),
        # An account locked or suspended that the customer asks to have opened. "Can you tell me where the unlock
        # setting is?" and "how do I unlock a beam?" are how-tos.
        _rx(
            r"\b(?:please|can you|could you|would you|need you to)\s+(?:\w+\s+){0,2}?(?:unlock|unblock|reactivate|reinstate|re-enable)\s+(?:it|me|us|my account|our account|the account|my login|my user|my profile)\b"
            r"|\b(?:reset|remove|lift|clear)\s+the\s+(?:lock|block|suspension)\s+on\s+(?:my|our|the)\s+account\b"
        ),
        _rx(
            r"\b(?:my|our|the)\s+(?:\w+\s+)?(?:account|login|profile)\s+(?:got|is|was|has been|became)\s+(?:locked|blocked|frozen|suspended)\b[^.?!\n]{0,60}\b(?:please|asap|can you|could you|need it)\b(?![^.?!\n]{0,25}\b(?:tell me|explain|where|how long|how do|what)\b)"
        ),
        # Someone who should not have access still has it: a former employee or admin, or an unknown person.
        _rx(
            r"(?:\b(?:former|previous|ex-?|fired|departed|terminated|dismissed)\s*(?:employee|admin|administrator|colleague|teammate|member|contractor|staff|owner|intern|user|worker)|\bold (?:admin|administrator|owner|employee|colleague|contractor)|\b(?:employee|admin|administrator|colleague|teammate|contractor|intern)\s+(?:who|that)\s+(?:left|quit|was fired|we fired|we let go))s?(?:'s)?\b[^.?!\n]{0,80}\b(?:still|continu\w*|keeps?|after (?:he|she|they) left)\b"
        ),
        _rx(r"\b(?:lock|kick|shut)\s+(?:him|her|them|this (?:person|user)|that (?:person|user))\s+out\b"),
        _rx(
            r"\b(?:competitors?|outsiders?|another company|other compan(?:y|ies)|attackers?|hackers?)\b[^.?!\n]{0,40}\b(?:access|got into|copied|has our|have our|seeing our|sees our)\b"
        ),
        _rx(
            r"\b(?:stranger|intruder|attacker|somebody else|someone else|unknown (?:person|user|party|people))\b[^.?!\n]{0,40}\b(?:logged|log|signed|sign|accessed|access|got into|changed|using|used|has access)\b"
        ),
        _rx(
            r"\baccount take-?over\b|\b(?:account|workspace|login)\b[^.?!\n]{0,20}\b(?:taken over|hijacked)\b"
        ),
        # Mail or codes the customer did not ask for, and asking whether the account is safe.
        _rx(
            r"\b(?:password|reset|verification|login|sign-?in|2fa|mfa|codes?)\b[^.?!\n]{0,50}\b(?:never|didn'?t|did not|haven'?t|have not)\s+(?:ask|request|trigger|initiat)\w*|\b(?:never|didn'?t|did not|haven'?t|have not)\s+(?:ask|request|trigger|initiat)\w*\s+(?:for\s+)?(?:a\s+|the\s+|any\s+)?(?:password reset|reset|codes?|login|sign-?in|verification)\b"
        ),
        _rx(
            r"\b(?:is|was|has|have)\s+(?:my|our)\s+(?:account|workspace|login|password|api key)s?\s+(?:been\s+)?(?:safe|secure|ok|okay|at risk|compromised|accessed|hacked|breached|exposed|leaked)\b"
        ),
        # Other languages: hackeado / gehackt, piraté, invadiu, comprometida, someone got in ("alguien entró en mi
        # cuenta", "quelqu'un s'est connecté"), a key leaked ("clave API filtrada", "API Key geleakt").
        _rx(
            r"\b(?:ge)?hack(?:eado|eada|eados|earon|earam|eou|eó|ée?s?|t)\b|\bpirat(?:é|ée|és|ées|age)\b|\binvadi(?:u|ram|da|do)\b|\bcompromet(?:id[oa]|eu)\b|\bkompromittiert\b"
        ),
        _rx(
            r"\b(?:alguien|algu[eé]m|quelqu'un|jemand|qualcuno|iemand)\b[^.?!\n]{0,30}\b(?:entr[oó]|entrou|accedi[oó]|acessou|connect[ée]|eingeloggt|angemeldet|zugegriffen|acceduto|ingelogd)"
        ),
        _rx(
            r"\b(?:clave|chave|schl[uü]ssel|cl[ée]|key|token|contrase[nñ]a|senha|passwort|mot de passe)\b[^.?!\n]{0,30}\b(?:filtrad[ao]|vazad[ao]|geleakt|gestohlen|robad[ao]|roubad[ao]|vol[ée]e?|expuest[ao]|expost[ao])\b"
        ),
        # Break-ins the intent head alone had caught: an unknown admin, key or beam ("an unknown admin was
        # added", "beams I never made", "a Google Sheet none of us created", "nobody here did that"), credentials that
        # may have been stolen or were shared in public, phishing, a stolen laptop, access from an IP abroad, a fired
        # employee still signing in, "that wasn't me", everyone locked out; the same in it and nl.
        _ask(
            r"\b(?:an?|some|two|three|several|\d+)\s+(?:new\s+)?(?:unknown|unauthori[sz]ed|unrecogni[sz]ed|strange|unfamiliar)\s+(?:\w+\s+)?(?:admins?|members?|api keys?|keys?|tokens?|beams?|webhooks?|exports?)\b[^.?!\n]{0,40}\b(?:was|were|has been|have been|got|appeared|showed up|showing up|in our|on our|added|created)\b"
            r"|\b(?:admin|user|member|key|token|webhook|beam|person)\b[^.?!\n]{0,40}\b(?:nobody|no one)\s+(?:here\s+)?(?:knows|recogni[sz]es)\s*(?:[.!]|$)"
        ),
        _ask(
            r"\b(?:outside|external)\b[^.?!\n]{0,45}\b(?:added|invited)\s+(?:as\s+)?(?:an?\s+)?(?:admin|owner|member)\b|\b(?:added|invited)\s+as\s+(?:an?\s+)?admin\b[^.?!\n]{0,40}\b(?:outside|unknown|don'?t know|never)\b"
        ),
        _ask(
            r"\b(?:beams?|keys?|api keys?|users?|admins?|webhooks?|exports?|tokens?|connections?|sheets?)\b[^.?!\n]{0,10}\b(?:i|we)\s+(?:never|didn'?t|did not)\s+(?:made|make|create|created|add|added|set up|authori[sz]e)\b"
        ),
        _ask(
            r"\b(?:nobody|no one|none of us)\s+(?:here\s+|on (?:our|the) team\s+)?(?:did|made|created|added|ran|started|authori[sz]ed|set up|initiated|triggered|touched|own|owns)(?:\s+(?:that|this|it|them|those|these)\b|\s*(?:[.!?,;]|$))"
        ),
        _ask(
            r"\b(?:api keys?|tokens?|credentials?|passwords?|secrets?)\b[^.?!\n]{0,40}\b(?:may have been|might have been|were|was|got|have been|has been)\s+(?:stolen|leaked|exposed|compromised)\b"
        ),
        _ask(
            r"\b(?:shared|leaked|dumped|posted)\b[^.?!\n]{0,30}\b(?:api keys?|keys?|tokens?|credentials?|passwords?|secrets?|sbk_\w+)\b[^.?!\n]{0,30}\b(?:public|github|gitlab|gist|pastebin|stack ?overflow|forum|online|internet|slack channel)\b"
        ),
        _ask(
            r"\bphish\w*|\b(?:clicked|opened)\s+(?:a|the|an)\s+link\b[^.?!\n]{0,60}\b(?:entered|typed|gave)\s+(?:my|our)\s+(?:password|credentials|login)\b|\bentered my (?:password|credentials)\b[^.?!\n]{0,40}\b(?:fake|link|page|site)\b|\b(?:fake|spoofed|bogus)\s+(?:login|sign-?in)\s+(?:page|site|e-?mail)\b"
        ),
        _ask(r"\bbroken into\b|\bbreak-?in\b"),
        _ask(
            r"\b(?:laptops?|computers?|macbooks?)\b[^.?!\n]{0,20}\b(?:was|were|got|has been|have been)\s+(?:stolen|taken)\b"
        ),
        _ask(
            r"\b(?:accessed|signed in|logged in|exports?|downloads?)\b[^.?!\n]{0,30}\bfrom an?\s+(?:ip|location|country)\b[^.?!\n]{0,40}\b(?:another country|abroad|no staff|nobody|don'?t recogni[sz]e|unknown)\b"
        ),
        _ask(
            r"\b(?:employee|admin|administrator|contractor|intern|colleague)s?\s+(?:we|i)\s+(?:fired|let go|dismissed|laid off)\b[^.?!\n]{0,60}\b(?:still|sign\w*|log\w*|access\w*)\b"
        ),
        _ask(
            r"\b(?:he|she|they|someone|somebody|the contractor|the employee|an? (?:ex-?)?(?:employee|contractor|admin))\s+(?:may have\s+|might have\s+|has\s+)?(?:copied|took|stole|kept)\s+(?:our|my|the)\s+(?:production\s+|live\s+|api\s+)?(?:key|keys|token|tokens|credentials)\b"
        ),
        _ask(r"\b(?:that|it|this)\s+(?:wasn'?t|was not)\s+(?:me|us|one of us)\s*(?:[.!,;]|$)"),
        _ask(r"\blocked\s+(?:everyone|everybody|all of us|us|me|the whole team)\s+out\b"),
        # "a laptop with an active session was stolen", "an API key in our workspace nobody recognises", customer data
        # that "showed up on a paste site", a change "and it wasn't any of our admins".
        _ask(
            r"\b(?:laptops?|computers?|macbooks?)\b[^.?!\n]{0,45}\b(?:was|were|got|has been|have been)\s+(?:stolen|taken)\b"
        ),
        _ask(
            r"\b(?:nobody|no one|none of us)\s+(?:here\s+|on (?:our|the) team\s+)?(?:recogni[sz]es?|knows? where (?:it|they) came from)\b"
        ),
        _ask(
            r"\b(?:data|records|contacts|customers?|list)\b[^.?!\n]{0,60}\b(?:showed up|showing up|appeared|turned up|popped up)\s+(?:on|in)\b[^.?!\n]{0,30}\b(?:paste|dark ?web|forum|public|competitor|internet|online)\b"
        ),
        _ask(r"\bwasn'?t any of (?:us|our)\b"),
        # A sign-in alert from somewhere never been, something created by someone that nobody recognises or owns, a
        # phishing mail clicked, data in a portal "that isn't ours", settings changed that "nobody touched", runs from
        # IP addresses outside the company; niemand von uns (de) and the like.
        _ask(
            r"\b(?:sign-?in|log-?in|login)\s+(?:alert|notification|e-?mail|warning)\b[^.?!\n]{0,60}\b(?:never been|wasn'?t me|not me|don'?t recogni[sz]e|unknown)\b"
        ),
        _ask(
            r"\b(?:domain|ip|address|url|device|location|app|server)s?\s+(?:we|i)\s+(?:don'?t|do not)\s+recogni[sz]e\b"
        ),
        _ask(
            r"(?<!if )(?<!when )(?<!whether )\bsomeone\s+(?:has\s+)?(?:created|added|made|set up|disabled|turned off|rolled|exported|invited)\s+(?:(?:a|an|new|our|the|\d+)\s+)?(?:\w+\s+)?(?:webhooks?|api keys?|keys?|tokens?|admins?|users?|members?|exports?|secrets?|sso|2fa|beams?)\b"
        ),
        _ask(
            r"\bclaiming to be from\b|\b(?:clicked|opened)\s+(?:it|the link)\b[^.?!\n]{0,30}\b(?:typed|entered)\b"
        ),
        _ask(r"\b(?:that|which)\s+(?:isn'?t|is not|aren'?t|are not)\s+ours\b|\bip addresses?\s+outside\b"),
        _ask(
            r"\b(?:got|were|was)\s+changed\b[^.?!\n]{0,30}\b(?:overnight|nobody|no one|without (?:us|our))\b"
        ),
        _ask(
            r"\bniemand (?:von uns|hier)\b|\bnadie de nosotros\b|\bpersonne (?:chez nous|de nous|d'entre nous)\b|\bnessuno di noi\b|\bniemand van ons\b|\bningu[ée]m (?:de n[óo]s|aqui)\b"
        ),
        _ask(
            r"\baccesso sospetto\b|\bnon ero io\b|\bno fui yo\b|\bn[ãa]o fui eu\b|\bce n'[ée]tait pas moi\b|\bdas war ich nicht\b|\bdat was ik niet\b"
        ),
        _ask(
            r"\b(?:alguien|algu[eé]m|quelqu'un|jemand|qualcuno|iemand)\b[^.?!\n]{0,30}\b(?:cambi[oó]|mudou|ge[äa]ndert|gewijzigd|modifi[ée]|changed)\b|\bvazou\b"
        ),
    ],
    "legal": [
        _rx(
            r"\b(?:lawyers?|attorneys?|solicitors?|(?:our|my|their) counsel|legal (?:action|team|counsel|department|proceedings|notice)|lawsuit|sue|suing|litigation|court|subpoena|cease and desist|small claims)\b"
        ),
        _rx(
            r"\b(?:breach of contract|consumer protection|trading standards|ombudsman|regulator|attorney general|ftc|ico complaint|class action)\b"
        ),
        _rx(
            r"\b(?:data processing agreement|dpa|sub-?processors?|standard contractual clauses|sccs?|nda|msa|terms of service violation|copyright|dmca|trademark|infring(?:e|ing|ement))\b"
        ),
        _rx(r"\b(?:report|reporting) (?:you|this|your company)\b[^.?!\n]{0,30}\b(?:to|with)\b"),
        _rx(r"\blegal(?:ly)?\b"),
        # Other languages: lawyers, suing, courts, legal steps.
        _rx(
            r"\b(?:abogad[oa]s?|\w*anw[aä]lt\w*|avocats?|advogad[oa]s?|avvocat[oi]|advocaat|demandar(?:é|emos|los)?|verklag\w*|tribunal|gerichte?n?|acciones legales|acci[oó]n legal|medidas legales|rechtliche schritte|action en justice|poursuites?|a[cç][aã]o judicial|medidas legais|azioni legali)\b"
        ),
        # Complaints to a bureau or regulator named (Better Business Bureau, a data protection authority, CNIL,
        # Procon), a formal complaint, the authorities, a contract said to be violated, a claim for damages, a BAA or
        # SOC 2 report demanded; vie legali (it), entrar na justiça (pt).
        _ask(
            r"\bbetter business bureau\b|\bbbb\b|\bdata protection (?:authority|agency|commissioner|regulator|board)\b|\b(?:cnil|procon|aepd|garante privacy|bfdi)\b"
        ),
        _ask(r"\bformal complaint\b|\bthe authorities\b"),
        _ask(r"\b(?:violat\w*|breach\w*)\s+(?:of\s+)?(?:the|our|your)\s+(?:contract|agreement|terms|sla)\b"),
        _ask(r"\bclaim\w*\s+(?:for\s+)?damages\b|\bdamages\s+claim\b"),
        _ask(r"\bbaa\b|\bbusiness associate agreement\b|\bsoc ?2\s+(?:type\s+\w+\s+)?report\b"),
        _ask(r"\bvie legali\b|\bentrar na justi[cç]a\b|\bprocess(?:are|o)\b[^.?!\n]{0,15}\blegal"),
        # "I will file a complaint with the ICO".
        _ask(r"\bcomplaint\s+with\s+(?:the\s+)?(?:ico|ftc|regulator|authorit\w+|ombudsman|commission)\b"),
        # "we will be seeking damages", a claim against the vendor, logs to preserve
        # (a litigation hold), a data protection authority in other languages.
        _ask(
            r"\b(?:seek|seeking|claim|claiming|sue for|recover)\w*\s+(?:\w+\s+)?damages\b|\bclaim against\b"
        ),
        _ask(r"\bpreserve\s+(?:all\s+)?(?:the\s+)?(?:logs|records|data|evidence)\b|\blitigation hold\b"),
        _ask(
            r"\bdatenschutzbeh[öo]rde\b|\bautorit[ée] de protection des donn[ée]es\b|\bautoridad de protecci[oó]n de datos\b|\bautoridade de prote[cç][aã]o de dados\b|\bautoriteit persoonsgegevens\b"
        ),
    ],
    "privacy": [
        # Personal data the customer wants gone from the vendor's side: "make sure their records are purged from all
        # your run logs", "remove me from your systems". How long deleted rows stay in backups is a how-to.
        _rx(
            r"\b(?:make sure|ensure|confirm|asked (?:us|you) to|need you to|want you to|(?:i|we) (?:want|need|would like)|(?:i|we)'d like)\b[^.?!\n]{0,40}\b(?:data|records|information|details|e-?mails?|contacts)\s+(?:(?:are|is|get|gets|have been|has been|be)\s+)?(?:purged|erased|wiped|scrubbed|deleted|removed)\s+from\s+(?:all\s+(?:of\s+)?)?(?:your|syncbeam'?s)\b"
        ),
        _rx(
            r"(?:^|(?<=[.!?\n]))[^\w.!?\n]{0,5}(?:please\s+)?(?:purge|erase|wipe|scrub|delete|remove)\s+(?:me|us|my data|our data|all (?:of )?(?:my|our) data|everything|all (?:the )?(?:data|records|information)\s+(?:about|on|for|of)\s+\S+(?:\s+\S+){0,4}?)\s+from\s+(?:all\s+(?:of\s+)?)?(?:your|syncbeam'?s)\b"
        ),
        _rx(
            r"\b(?:gdpr|rgpd|dsgvo|ccpa|cpra|lgpd|pipeda|hipaa|dsar|data subject|subject access request|right to (?:be forgotten|erasure|access|portability))\b"
        ),
        _rx(
            r"\b(?:delete|erase|remove|purge|wipe|export|download|send me|give me|copy of)\b[^.?!\n]{0,30}\b(?:all )?(?:my|our|the)\b[^.?!\n]{0,15}\b(?:personal (?:data|information|info)|data (?:you|that you) (?:hold|have|store|keep)|pii|customer data|information you have)\b"
        ),
        _rx(
            r"\b(?:what|which) (?:personal )?(?:data|information) (?:do )?you (?:hold|have|store|keep|collect) (?:on|about) (?:me|us)\b"
        ),
        _rx(r"\b(?:stop|opt out of)\b[^.?!\n]{0,20}\b(?:processing|selling|sharing) (?:my|our)\b"),
        _rx(r"\bprivacy (?:request|complaint|concern|violation)\b"),
        # What is held on a person, asked for by the person or on their behalf ("all the data we hold on them",
        # "pull what you have on m.rossi@example.com"): a data-subject request, whatever it is called.
        _rx(
            rf"\b(?:all|every(?:thing)?|every bit of)\b[^.?!\n]{{0,20}}\b(?:data|information|info|records?)\b[^.?!\n]{{0,25}}\b(?:hold|have|has|store|keep|process)\w*\s+(?:on|about)\s+{_ASKER}"
        ),
        # "What do you store about us?" and "everything you have on me" ask for it; "what do you store about us when
        # we connect Sheets?" asks how the product works.
        _rx(
            rf"\b(?:what|everything|all)\b[^.?!\n]{{0,30}}\b(?:has|holds|have|hold|stores?|keeps?)\s+(?:on|about)\s+(?:{_PERSON}|(?:me|us)\s*(?:[?.!]|$))"
        ),
        # Data sold or shared onward, or wanted gone: "is my data being sold to third parties?", "I want my data
        # gone".
        _rx(
            r"\b(?:my|our)\s+(?:personal\s+)?(?:data|information|details)\b[^.?!\n]{0,20}\b(?:sold|shared|sell|share)\b[^.?!\n]{0,20}\b(?:third[- ]part|advertis|other compan|partners?|brokers?)|\b(?:want|need|like|demand)\b[^.?!\n]{0,15}\b(?:my|our)\s+(?:personal\s+)?(?:data|information|details)\s+(?:deleted|erased|removed|gone|wiped)\b"
        ),
        # Personal data asked for or wanted gone in other words: "export everything you store about me", "what do you
        # know about me?", "anonymize all the personal info tied to my login", "scrub my name and email", "have my
        # personal data deleted", "I want to object to that", "why do you have my email?", "what you've logged about
        # me", "do not sell my data", a DPO or a record of processing activities.
        _ask(
            r"\b(?:everything|all(?: the)? (?:data|information|info))\s+(?:you|that you)\s+(?:store|hold|have|keep|collect)\w*\s+(?:about|on)\s+(?:me|us)\b(?!\s+(?:when|if|while|during|for (?:the|a)|in (?:the|a)))"
        ),
        _rx(
            r"\bwhat do you (?:know|have|store|hold|keep)\s+(?:about|on)\s+me\b(?!\s+(?:when|if|while|during))|\bfull list of (?:what|everything) you (?:store|hold|have|keep)\b"
        ),
        _ask(
            r"\b(?:please|can you|could you|kindly)\s+anonymi[sz]\w*|\banonymi[sz]\w*\s+(?:me|my (?:account|data|profile|user))\b"
        ),
        _ask(
            r"\b(?:scrub|purge|erase|wipe)\s+(?:my|our)\s+(?:name|e-?mails?|details|personal|data|run logs|logs)\b|\b(?:scrub|purge|erase|wipe)\s+all\s+(?:of\s+)?(?:my|our)\b"
        ),
        _rx(
            r"\b(?:my|our)\s+(?:own\s+)?personal\s+(?:data|information|info|details)\b[^.?!\n]{0,20}\b(?:deleted|erased|removed|purged|wiped)\b"
        ),
        _ask(r"\b(?:i|we)\s+(?:want to|would like to|wish to|hereby)\s+object\b"),
        _rx(
            r"\bwhy do you (?:have|hold|keep|store)\s+my\s+(?:e-?mail|data|information|info|details|number|address|name)\b"
        ),
        _rx(
            r"\b(?:data|information|info)\s+(?:you'?ve|you have|you)\s+(?:collected|gathered|stored|logged|kept|recorded)\s+(?:about|on)\s+(?:me|us)\b|\bwhat you'?(?:ve| have)?\s+(?:logged|collected|stored|kept|recorded)\s+(?:about|on)\s+(?:me|us)\b"
        ),
        _ask(
            r"\b(?:do not|don'?t)\s+sell\s+(?:my|our|or share)\b|\b(?:sell|selling|sold)\s+(?:my|our)\s+(?:personal\s+)?(?:data|information|info)\b"
        ),
        _ask(r"\bdpo\b|\bdata protection officer\b|\brecords? of processing\b"),
        # "her data removed from Syncbeam. Please purge it.", "remove all the customer records you've stored", "a
        # customer asked us to erase their data", "I object to you sharing my data", "everything you have on file
        # about me", "every third party that has received my data", "stop processing it", "personal data linked to my
        # user", "opt me out of any data sharing".
        _ask(
            r"\b(?:want|need|like|have|get|please)\b[^.?!\n]{0,20}\b(?:her|his|their|my|our)\s+(?:personal\s+)?(?:data|information|info|details)\s+(?:removed|deleted|erased|purged|wiped)\b|\bpurge\s+(?:it|them|that|this|everything)\b"
        ),
        _ask(
            r"\b(?:remove|delete|erase|purge)\b[^.?!\n]{0,40}\b(?:you'?ve|you have)\s+(?:stored|kept|collected|held)\b|\b(?:want|like) you (?:to stop )?holding\b"
        ),
        _ask(
            r"\basked (?:us|you) to (?:erase|delete|remove|purge)\s+(?:her|his|their|my|our|all)\s+(?:personal\s+)?(?:data|information|details|records)\b|\b(?:erase|delete|remove|purge)\s+(?:their|his|her)\s+(?:personal\s+)?data\b"
        ),
        _ask(
            r"\b(?:i|we)\s+object\s+to\b|\b(?:want|need|request|like)\s+(?:a\s+)?cop(?:y|ies) of\s+(?:all\s+)?(?:my|our)\s+(?:personal\s+)?(?:data|information|info)\b"
        ),
        _ask(r"\beverything you have (?:on file |stored )?(?:about|on) (?:me|us)\b"),
        _ask(r"\bthird[- ]part(?:y|ies)\b[^.?!\n]{0,40}\b(?:my|our) (?:personal )?data\b"),
        _ask(
            r"\bstop processing (?:my|our) (?:personal )?(?:data|information)\b|\b(?:please|pls|can you|could you)\s+stop processing (?:it|them)\b|\bopt (?:me|us) out of\b[^.?!\n]{0,20}\b(?:data|sharing|processing|tracking|marketing|analytics)\b"
        ),
        _ask(
            r"\bpersonal data\b[^.?!\n]{0,20}\b(?:linked to|tied to|associated with)\s+(?:me|my)\b|\bdisclosure of\b[^.?!\n]{0,40}\b(?:data|logs|information)\b"
        ),
        # "erase everything. account, logs, all of it", "delete my user", "wipe the cached contact data … on your
        # servers", "purged from your logs", "get rid of my data", "purge the synced records and run logs you keep",
        # "everything Syncbeam has stored about my user account", "the personal data relating to me", "who have you
        # shared my data with?", "all call recordings and emails you hold that include me".
        _ask(
            r"^\W*+(?:please\s+)?(?:erase|delete|wipe|purge|remove)\s+(?:everything|it all|all of it|my account|our account|my user|my data|our data)\b"
        ),
        _ask(
            r"\b(?:wipe|purge|erase|delete|remove)\b[^.?!\n]{0,60}\bon your (?:servers?|side|end|systems?)\b|\b(?:need|want|like|please|ensure|make sure|have)\b[^.?!\n]{0,60}\b(?:purged|erased|wiped|deleted|removed)\s+from\s+your\s+(?:logs?|servers?|systems?|database|backups?|records)\b"
        ),
        _ask(r"\bget rid of\s+(?:my|our|all)\s+(?:data|information|info|details|records)\b"),
        _ask(
            r"\b(?:purge|erase|wipe|delete|remove)\b[^.?!\n]{0,60}\b(?:you|that you)\s+(?:keep|hold|store|have|retain|cache)\b"
        ),
        _ask(
            r"\b(?:has|have)\s+stored\s+(?:about|on)\s+(?:me|us|my|our)\b|\bpersonal data\b[^.?!\n]{0,30}\b(?:relating to|about|concerning|regarding)\s+(?:me|us)\b"
        ),
        _rx(
            r"\b(?:who|which companies|which parties)\s+(?:have you|do you|did you)\s+(?:shared|share|sold|sell|given|give)\s+(?:my|our)\b"
        ),
        _ask(
            r"\b(?:you hold|you have|you keep|you store)\b[^.?!\n]{0,20}\b(?:that|which)\s+(?:include|mention|concern|relate to)\s+(?:me|us)\b"
        ),
    ],
}

# Which flags each requested action implies (every action is an account change).
_ACTION_FLAGS = {
    "refund": {"refund", "billing", "account_change"},
    "cancel_subscription": {"billing", "account_change"},
    "change_plan": {"billing", "account_change"},
    "change_entitlement": {"account_change"},
    "delete_account": {"privacy", "account_change"},
    "reset_mfa": {"security", "account_change"},
    "change_email": {"security", "account_change"},
}


_SENSITIVE_MATCHERS = {
    flag: _Family(patterns, crm_words=flag == "billing") for flag, patterns in _SENSITIVE.items()
}


def sensitive_flags(
    text: str, actions: list[str] | None = None, requests: list[str] | None = None
) -> list[str]:
    text = _plain(text)
    requests = request_sentences(text) if requests is None else requests
    flags = {flag for flag, family in _SENSITIVE_MATCHERS.items() if family.search(text, requests)}
    for kind in actions if actions is not None else all_requested_actions(text, requests):
        flags.update(_ACTION_FLAGS.get(kind, {"account_change"}))
    return sorted(flags)


# --------------------------------------------------------------------------- wanting a human

_HUMAN = [
    _rx(
        r"\b(?:speak|talk|chat|get through|connect me|put me through|transfer me)\b[^.?!\n]{0,30}\b(?:human|person|agent|someone|somebody|representative|rep|manager|supervisor|staff|people|team member|real)\b"
    ),
    _rx(r"\b(?:real|actual|live)\s+(?:human|person|agent|people|support)\b"),
    _rx(r"\bhuman(?:\s+being)?\b[^.?!\n]{0,20}\b(?:please|pls|now|help|support|agent)\b"),
    _rx(
        r"\b(?:not|no more|stop)\b[^.?!\n]{0,20}\b(?:a |the )?(?:bot|robot|ai|automated|canned|auto-?reply|chatbot)\b"
    ),
    _rx(r"\b(?:escalate|escalation)\b"),
    _rx(r"\b(?:call|phone|ring)\s+me\b"),
    # A call or a meeting with someone: "Can I schedule a call with our account manager?". "A meeting sync with
    # someone's calendar" and "a rep field" are about data.
    _rx(
        r"\b(?:schedule|book|set up|arrange|have|get(?: on)?|jump on|hop on)\s+(?:a\s+|an\s+)?(?:quick\s+|short\s+)?(?:call|meeting|zoom|video call|phone call)\s+with\s+(?:(?:our|my|your|an?|the|one of your)\s+)?(?:account manager|account executive|csm|customer success(?: manager)?|success manager|support (?:team|engineer|agent)|engineers?|someone|somebody|a person|(?:sales|support) (?:rep|team|person))\b(?!'s|\s+(?:field|data|objects?|records?|sync|calendar))"
    ),
    _rx(r"\bgive (?:me|us) a (?:call|ring)\b"),
    _rx(
        r"\b(?:your|a|the)\s+(?:manager|supervisor)\b(?![^.?!\n]{0,20}\b(?:role|permission|account|seat)s?\b)"
    ),
    _rx(r"^\s*(?:agent|human|representative|operator)[.!]*\s*$"),
    # Asking whether a person is there at all: "Is anyone actually reading these?", "is anybody there?".
    _rx(
        r"\b(?:is|are)\s+(?:there\s+)?(?:anyone|anybody|someone|somebody|a (?:human|real person|person))\s+(?:actually\s+|even\s+|really\s+)?(?:(?:reading|listening)(?:\s+(?:to\s+)?(?:these|this|me|us|my|our)(?:\s+(?:messages?|e-?mails?|tickets?|chats?|requests?))?)?(?:\s+(?:at all|anymore|any more|here|really|now))?\s*(?:[?!.]|$)|there\b|out there|on the other (?:end|side))"
    ),
    _rx(
        r"\b(?:someone|somebody|a person|an agent|a human|a rep|an engineer)\b[^.?!\n]{0,30}\bon (?:the |a )?(?:phone|call|line)\b|\bget me (?:someone|somebody|a person|an agent|a human|a rep)\b"
    ),
    # Other languages: a person to speak to ("hablar con una persona", "mit einem Menschen sprechen", "parler à
    # un humain", "falar com um atendente").
    _rx(
        r"\b(?:hablar|falar|conversar|sprechen|reden|parler|parlare|spreken)\b[^.?!\n]{0,25}\b(?:persona|pessoa|personne|person|humano|humain|menschen?|mitarbeiter\w*|agente|agent|atendente|operador|operatore|conseill\w*|alguien|algu[eé]m|quelqu'un|jemand\w*|qualcuno|iemand|medewerker)\b"
    ),
    # German puts the verb last: "mit einem Menschen sprechen".
    _rx(
        r"\bmit (?:jemandem|(?:einem|einer)\b[^.?!\n]{0,15}\b(?:menschen|mitarbeiter\w*|person|berater\w*))\b[^.?!\n]{0,15}\b(?:sprechen|reden|telefonieren)\b"
    ),
    _rx(
        r"\b(?:un |una |um |uma |einem |einen |un )?(?:humano|humain|atendente humano|echten? menschen?|persona real|pessoa real)\b"
    ),
    # A person asked for in fewer or other words: "I need a human.", "Person please.", "How do I reach a human?",
    # "What's your phone number?", "get back to me by phone", "I'd rather discuss this with a person", "sort this out
    # on a quick call with one of your support folks", "hand this over to a colleague of yours", "pass this to whoever
    # handles billing", "put me in touch with someone from your sales team", "an actual engineer", "get me a support
    # rep", "speak with your billing department", "I need someone who can actually look at my account".
    _ask(
        r"^\W*+(?:(?:(?:i|we)\s+(?:need|want)|need|want|get me|give me|(?:can|could|may) (?:i|we) (?:get|have|speak to|talk to))\s++)?(?:an?\s+)?(?:human|person|real person|live person|agent|live agent|rep|representative)\W*+(?:(?:please|pls|plz|now|on this|here|asap)\W*+)?$"
    ),
    _rx(
        r"\b(?:your|support(?:'s)?)\s+(?:support\s+)?(?:phone|telephone)\s+(?:number|line)\b|\ba\s+(?:phone|telephone)\s+(?:number|line)\s+(?:i|we)\s+can\s+(?:call|ring|use)\b|\b(?:phone|telephone)\s+(?:number|line)\s+for\s+(?:support|you|your team)\b"
    ),
    _ask(
        r"\b(?:by|over the|on the)\s+phone\b[^.?!\n]{0,20}\b(?:someone|please|asap)\b|\b(?:get back to|call|ring|contact|reach)\s+(?:me|us|support|you)\s+(?:back\s+)?by phone\b"
    ),
    _rx(
        r"\b(?:reach|contact|get hold of|get ahold of|talk to|speak to|speak with)\s+(?:a|an|one of your)\s+(?:real\s+|live\s+|actual\s+)?(?:human|person|agent)\b|\bis there (?:a|an|any)\s+(?:real\s+|actual\s+|live\s+)?(?:person|human|agent|one)\s+(?:i|we)\s+can\s+(?:talk|speak|chat)\b|\bwho can (?:i|we) (?:call|talk to|speak to|speak with|contact)\b|\b(?:contact|reach|call|ring)\s+(?:you|support|your team|someone)\s+(?:by|over the|on the)\s+phone\b"
    ),
    _ask(
        r"\b(?:discuss|sort|handle|deal with|go through|walk through|talk)\b[^.?!\n]{0,40}\bwith\s+(?:a|an|one of your|someone|somebody)\s+(?:\w+\s+)?(?:person|human|agent|rep|engineer|folks?|people|colleague|staff|team member)\b"
    ),
    _ask(
        r"\b(?:hand|pass|forward|transfer|send)\w*\s+(?:this|it|me|us|my (?:ticket|case|request)|this (?:ticket|case|request))\s+(?:over\s+|on\s+)?to\s+(?:a colleague|a person|a human|an agent|your (?:support|billing|sales|team|staff|colleagues?|engineers?|people|agents?)|one of your|whoever\s+(?:handles|deals with|is in charge)|(?:someone|somebody)\s+(?:who (?:handles|can|is in charge)|(?:on|at|from|in)\s+your\b)|the (?:billing|sales|support) (?:team|department|people))\b|\bhand (?:me|us) over\b"
    ),
    _ask(
        r"\b(?:speak|talk|chat)\s+(?:to|with)\s+(?:your|the|someone (?:from|in|on))\s+(?:\w+\s+)?(?:department|team|sales|billing|engineers?|staff|specialist|expert|account manager|account executive|csm|success manager|manager|supervisor)\b|\b(?:speak|talk)\s+(?:to|with)\s+whoever\b"
    ),
    _ask(r"\b(?:real|actual|live)\s+(?:engineer|rep|representative|employee|support agent)\b"),
    _ask(r"\bget me\s+(?:a|an)\s+(?:support\s+)?(?:rep|representative|agent|engineer)\b"),
    _ask(
        r"\b(?:need|want|like)\s+(?:someone|somebody|a person|a human|an? (?:real\s+|actual\s+)?(?:person|human|engineer|agent))\s+(?:who can|to)\s+(?:actually\s+|really\s+)?(?:look|help|check|review|fix|sort|answer|handle|dig|investigate)\s+(?:at\s+|into\s+|with\s+|out\s+)?(?:this|it|that|my|our|me|us|the (?:issue|problem|account|ticket|case))\b"
    ),
    _ask(
        r"\bput\s+(?:me|us)\s+in\s+touch\s+with\b|\b(?:get on|hop on|jump on|do|have|schedule)\s+a\s+screen ?share\b"
    ),
    _ask(
        r"\b(?:somebody|someone|anyone)\s+(?:from|on|in)\s+your\s+(?:\w+\s+)?(?:team|side|company|staff|department)\b[^.?!\n]{0,30}\b(?:get back|contact|call|reach|look|help)\b"
    ),
    # "can someone from billing contact me", "have someone from support look at workspace acme-ops", "can i get a call
    # back?", "I would like to be put in touch with our account manager", "I need a person to actually dig into it".
    _ask(
        r"\b(?:someone|somebody)\s+(?:from|at)\s+(?:your\s+)?(?:billing|sales|support|finance|legal|security|success|engineering|accounts?)\b[^.?!\n]{0,40}\b(?:contact|call|email|reach|get back|look|help|dig)\b"
    ),
    _ask(r"\b(?:get|have|request|want|need|like)\s+a\s+call\s+back\b|\bcall (?:me|us) back\b"),
    _ask(
        r"\b(?:be|get)\s+put in touch with\b|\b(?:like|want|need)\s+to\s+(?:be\s+|get\s+)?in\s+touch\s+with\s+(?:our|my|an?|the|your)\s+(?:account manager|csm|customer success|rep|person|human)\b"
    ),
    _ask(
        r"\bhave\s+(?:a|an|your|one of your)\s+(?:\w+\s+)?(?:engineer|person|human|agent|rep|specialist|manager)\s+(?:contact|call|email|reach out to|look at|check)\s+(?:me|us|my|our|this|it)\b|\blet\s+(?:a|an)\s+(?:real\s+)?(?:human|person|agent)\b|\bask\s+(?:your|the)\s+(?:\w+\s+)?(?:team|engineers?|manager|staff|people)\s+to\s+(?:email|call|contact|reach out to)\s+(?:me|us)\b"
    ),
    # "can your solutions engineering team get on a Zoom with us", "I'd like them to reach out to me directly", "could
    # a member of your technical team take a look", "schedule time with someone from your onboarding team", "whatever
    # gets me a human".
    _ask(
        r"\b(?:get|hop|jump)\s+on\s+(?:a\s+)?(?:zoom|call|meeting|teams call|google meet|video call|screen ?share)\s+with\s+(?:us|me)\b"
    ),
    _ask(
        r"\b(?:like|want|need)\s+(?:them|him|her|someone|somebody|you)\s+to\s+(?:reach out|call|contact|phone|ring)\s+(?:to\s+)?(?:me|us)\b"
    ),
    _ask(
        r"\b(?:a member of|someone on|somebody on|one of|someone in|somebody in)\s+your\s+(?:\w+\s+)?(?:team|staff|engineers?|people|folks)\b[^.?!\n]{0,30}\b(?:take a look|look|check|help|call|contact|get back|dig|walk)\b"
    ),
    _ask(
        r"\bschedule\s+(?:a\s+|some\s+)?(?:time|call|meeting|session)\s+with\s+(?:someone|somebody|one of|a person|an engineer|your)\b"
    ),
    _ask(r"\bgets? me (?:a|an) (?:human|person|agent|real person)\b"),
]


_HUMAN_MATCHER = _Family(_HUMAN)


def wants_human(text: str, requests: list[str] | None = None) -> bool:
    text = _plain(text)
    return _HUMAN_MATCHER.search(text, request_sentences(text) if requests is None else requests)


# --------------------------------------------------------------------------- sentiment

_NEGATIVE = re.compile(
    r"\b(?:angry|annoy(?:ed|ing)|frustrat(?:ed|ing)|furious|upset|terrible|awful|horrible|unacceptable|ridiculous|"
    r"disappoint(?:ed|ing)|worst|useless|garbage|pathetic|disgrace(?:ful)?|outrage(?:d|ous)|fed up|sick of|"
    r"waste of|scam|rip-?off|incompetent|hate|nightmare|shocking|appalling|livid|unusable|still (?:not|broken|waiting)|"
    r"again and again|third time|second time|nobody (?:has )?(?:answered|replied|helped))\b",
    re.IGNORECASE,
)
_POSITIVE = re.compile(
    r"\b(?:thanks?|thank you|great|love|awesome|excellent|amazing|appreciate(?:d)?|helpful|perfect|wonderful|"
    r"fantastic|brilliant|happy|pleased|nice|cheers)\b",
    re.IGNORECASE,
)


def sentiment(text: str) -> str:
    negative = len(_NEGATIVE.findall(text))
    negative += text.count("!!") + (1 if re.search(r"\b[A-Z]{5,}\b(?:\W+\b[A-Z]{3,}\b){2,}", text) else 0)
    positive = len(_POSITIVE.findall(text))
    # A polite closing ("thanks") does not outweigh a complaint.
    if negative and negative >= positive - 1:
        return "negative"
    if positive >= 2 or (positive and not re.search(r"\?", text)):
        return "positive"
    return "neutral"


# --------------------------------------------------------------------------- language

_STOPWORDS: dict[str, frozenset[str]] = {
    # Words several languages share ("a", "as", "me", "in", "was") count for none: with "a" and "as" in the
    # Portuguese list, "Can a beam write to a sheet as a destination?" was read as Portuguese. The other lists also
    # hold greetings and thanks ("Hallo", "merci"): a customer's own words around a quoted error are often little
    # more than those. Nothing here is an English word a support message uses ("will", "hat", "bin", "no", "del").
    "en": _words(
        "and are at be by can could did do does for from get has have how i if is it my not of or our should that"
        " the there they this to we were what when where which who why with would you your"
    ),
    "es": _words(
        "como con cómo de el en es está la las los mi mis no para por puedo que qué un una y"
        " hola gracias pero porque cuando también muy sus tengo tiene nuestra nuestro nos esta esto quiero"
        " necesito puede pueden ayuda"
    ),
    "fr": _words(
        "avec comment de des est et je la le les ma mes mon ne pas pour que qui sur un une vous"
        " bonjour merci nous notre nos votre vos ce cette il elle au aux du mais ou où sont peux pouvez svp"
        " dans cordialement"
    ),
    "de": _words(
        "auf das den der die ein eine es für ich ist kann mein meine mit nicht sie und wie zu"
        " hallo bitte danke aber auch bei beim dass dem einen einem einer haben habe immer jetzt kein keine"
        " können könnt mir mich noch nur oder schon sind soll sollte uns unser unsere unseren von warum weil"
        " wenn wir wird werden wurde über zum zur ihr euch geht kommt tun hilfe hier dann sich alle"
    ),
    "pt": _words(
        "com como de e em meu minha não o os para por posso que um uma você é"
        " olá obrigado obrigada nossa nosso vocês está são mas quando porque também muito isso esse essa ao"
        " preciso quero gostaria pelo pela"
    ),
    "it": _words(
        "che come con di e gli ho il la le lo mia mio non per posso sono un una è"
        " buongiorno ciao grazie nostro nostra vostro anche quando perché questo questa della dei delle"
        " nella abbiamo potete vorrei"
    ),
    "nl": _words(
        "dat de een en het hoe ik is je kan met mijn niet op te van voor"
        " hallo bedankt graag ons onze jullie maar ook geen hebben heb heeft wordt worden naar bij zijn"
        " alstublieft"
    ),
}
_SCRIPTS = [
    ("ja", re.compile(r"[\u3040-\u30ff]")),
    ("ko", re.compile(r"[\uac00-\ud7af]")),
    ("zh", re.compile(r"[\u4e00-\u9fff]")),
    ("ru", re.compile(r"[\u0400-\u04ff]")),
    ("ar", re.compile(r"[\u0600-\u06ff]")),
    ("he", re.compile(r"[\u0590-\u05ff]")),
    ("el", re.compile(r"[\u0370-\u03ff]")),
    ("hi", re.compile(r"[\u0900-\u097f]")),
    ("th", re.compile(r"[\u0e00-\u0e7f]")),
]
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# Stop words that make a reading decisive; below it the text says too little and the default stands.
_DECISIVE = 2
# Stop words of a language in the customer's own words that make the text CLEARLY that language (written_in),
# with at least twice as many as any other language: "Hallo, how do I export? Danke" is not clearly English.
_CLEAR = 3

# What the customer did not write in their own words: code blocks and spans, quoted text (an error message, a
# button label), an earlier e-mail quoted with ">", log lines and stack frames, an error as the product prints it,
# URLs and e-mail addresses. "Hallo, beim Sync kommt immer: 'Error SB-1001: the connection authorization
# expired'. Was soll ich tun?" is German: the English of the quote must not outvote the customer's own words.
# A quote's text excludes its own opening mark: an unclosed one costs a scan to the next mark, not 400 characters.
_NOT_PROSE = [
    re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL),
    re.compile(r"`[^`\n]+`"),
    re.compile(r"^[ \t]*>.*$", re.MULTILINE),
    re.compile(r"\b(?:https?://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE),
    # Double quotes in every typographic convention: "…", “…”, „…“, „…”, «…», »…«, 「…」.
    re.compile(
        r'"[^"\n]{1,400}"|“[^“”\n]{1,400}”|„[^„“”\n]{1,400}[“”]|«[^«»\n]{1,400}»|»[^»«\n]{1,400}«|「[^「」\n]{1,400}」'
    ),
    # Single quotes that are not an apostrophe inside a word (don't, l'erreur): 'Error SB-1001: …', ‘…’, ‚…‘.
    re.compile(r"(?<![\w'])'(?=\S)[^'\n]{1,400}(?<=\S)'(?![\w'])|‘[^‘’\n]{1,400}’|‚[^‚‘’\n]{1,400}[‘’]"),
    # Log lines: a timestamp or a level first, a stack frame, a traceback, "SomethingError: …".
    re.compile(
        r"^[ \t]*(?:\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\[?\d{2}:\d{2}:\d{2}\b|\[?(?:ERROR|WARN|WARNING|INFO|DEBUG|TRACE|FATAL|CRITICAL)\b"
        r"|at [\w$.<>]+\(|File \"|Traceback \(|[\w.]*[a-z](?:Error|Exception)\b).*$",
        re.MULTILINE,
    ),
    # An error as the product prints it, to the end of its sentence: "SB-1001: the connection authorization
    # expired", "Error 403: forbidden", "Fehlermeldung: The connection authorization expired".
    re.compile(
        r"(?:\b[A-Z]{2,5}-\d{3,5}\b|\b(?:error|errno|exception|code)\s*#?\d{3,5}\b"
        r"|\b(?:error|exception|fehler\w*|erreur|errore|fout(?:melding)?|mensaje de error|mensagem de erro)\b)"
        r"\s*:[^\n]*?(?=[.!?](?:\s|$)|\n|$)",
        re.IGNORECASE,
    ),
]


def prose(text: str) -> str:
    """The customer's own words: `text` without what it quotes, pastes or links (see _NOT_PROSE)."""
    for pattern in _NOT_PROSE:
        text = pattern.sub(" ", text)
    return text


def _script(text: str) -> str | None:
    letters = sum(1 for c in text if c.isalpha())
    for code, pattern in _SCRIPTS:
        if letters and len(pattern.findall(text)) >= max(2, letters // 4):
            return code
    return None


def _stop_words(text: str) -> dict[str, int]:
    words = [w.lower() for w in _WORD.findall(unicodedata.normalize("NFC", text))]
    return {code: sum(1 for w in words if w in stop) for code, stop in _STOPWORDS.items()}


def _reading(text: str, default: str) -> tuple[str, bool]:
    """The language of `text` and whether the text was decisive (a script, or enough stop words)."""
    script = _script(text)
    if script is not None:
        return script, True
    scores = _stop_words(text)
    best = max(scores, key=lambda code: (scores[code], code == default))
    if scores[best] < _DECISIVE:
        return default, False
    return best, True


def language(text: str, default: str = "en") -> str:
    """ISO 639-1 code from script, then stop-word counts; `default` when the text says too little.

    Read from the customer's own words (prose()) when they say enough, so that a quoted error, log or earlier
    reply in another language does not outvote them; else from the whole text. When all the stop words of `default`
    were in the quotes and the own words carry some of one other language ("Hallo, 'Error SB-1001: the connection
    authorization expired' – bitte"), that language.
    """
    if not any(c.isalpha() for c in text):
        return default
    own = prose(text)
    code, decisive = _reading(own, default)
    if decisive:
        return code
    scores = _stop_words(own)
    others = sorted((n, c) for c, n in scores.items() if c != default and n)
    quoted_default = _stop_words(text).get(default, 0) > scores.get(default, 0) == 0
    if quoted_default and others and (len(others) == 1 or others[-1][0] > others[-2][0]):
        return others[-1][1]
    return _reading(text, default)[0]


def written_in(text: str, code: str) -> bool:
    """Whether the customer's own words are clearly in `code`: its script, or at least _CLEAR of its stop words
    and twice as many as any other language's. Decides whether a stated locale may be overridden by the text."""
    own = prose(text)
    script = _script(own)
    if script is not None or code not in _STOPWORDS:
        return script == code
    scores = _stop_words(own)
    rival = max((n for c, n in scores.items() if c != code), default=0)
    return scores[code] >= _CLEAR and scores[code] >= 2 * rival


def locale_language(locale: str | None) -> str | None:
    """The language of a locale a client or helpdesk states ("de-DE", "pt_BR", "EN" → de, pt, en); None when
    there is none or it names no language ("und", "", a number)."""
    code = (locale or "").strip().replace("_", "-").split("-")[0].lower()
    if not re.fullmatch(r"[a-z]{2,3}", code) or code in ("und", "mul", "zxx", "mis"):
        return None
    return code


# --------------------------------------------------------------------------- problems, outages, impact

_PROBLEM = _rx(
    r"\b(?:error|errors|fail(?:s|ed|ing|ure)?|broken|crash(?:es|ed|ing)?|not working|doesn'?t work|does not work|"
    r"won'?t|can'?t|cannot|unable|stuck|bug|issue|problem|missing|wrong|hangs?|freez(?:e|es|ing)|timed? ?out|"
    r"times out|stopped|isn'?t|aren'?t|didn'?t|no longer|disappeared|exception|\b5\d\d\b)\b|\b[A-Z]{2,5}-\d{3,5}\b"
)
_QUESTION = _rx(
    r"^\s*(?:how|what|where|when|which|who|why|is|are|can|could|do|does|should|would|will)\b|\?\s*$"
)
_OUTAGE = [
    _rx(
        r"\b(?:outage|is down|are down|went down|gone down|completely down|site down|service down|down for)\b"
    ),
    _rx(
        r"\b(?:nothing|everything|every (?:sync|beam|run|job|integration)|all (?:of )?(?:our|my|the)?\s*(?:beams|syncs|runs|jobs|integrations|requests|pages|workflows))\b[^.?!\n]{0,30}\b(?:fail(?:s|ed|ing)?|down|broken|stopped|not (?:working|loading|running))\b"
    ),
    _rx(
        r"\b(?:can'?t|cannot|unable to)\b[^.?!\n]{0,15}\b(?:access|reach|load|open|log ?in to)\b[^.?!\n]{0,15}\b(?:anything|the (?:app|site|dashboard|service|api)|your (?:app|site|service|api))\b"
    ),
    _rx(r"\b(?:5\d\d|502|503|504)\b[^.?!\n]{0,20}\b(?:errors?|everywhere|on every|for all)\b"),
    _rx(r"\bdata loss\b|\blost (?:all )?(?:our|my) data\b"),
    _rx(
        r"\bnothing (?:is |has been )?(?:syncing|running|working|loading)\b|\bis (?:something|syncbeam|the (?:service|platform|app|api)) down\b"
    ),
    _rx(r"\bproduction\b[^.?!\n]{0,20}\b(?:down|broken|stopped|outage|blocked)\b"),
]
_MANY_USERS = [
    _rx(
        r"\b(?:all|every|most|many|several|hundreds of|thousands of|dozens of|multiple)\b[^.?!\n]{0,15}\b(?:users|customers|employees|people|team ?mates|colleagues|accounts|agents|staff|clients|members|teams)\b"
    ),
    _rx(r"\b(?:whole|entire)\b[^.?!\n]{0,10}\b(?:team|company|organi[sz]ation|org|department|office)\b"),
    _rx(r"\b(?:everyone|everybody|anyone|anybody|nobody|no one)\b"),
    _rx(
        r"\b(?:for|in|across)\s+(?:the|our|my)\s+(?:whole\s+|entire\s+)?(?:company|team|organi[sz]ation|org|department)\b"
    ),
    _rx(r"\b\d{2,}\s+(?:users|customers|people|employees|accounts|agents|seats)\b"),
    # The customer's own workspaces, all of them: "every sync in all of our workspaces is failing". "All
    # workspaces" alone is usually a question about a setting.
    _rx(
        r"\b(?:all|every|each|any)\s+(?:of\s+)?(?:our|my)\s+(?:\d+\s+)?workspaces\b|\bacross all (?:\d+\s+)?workspaces\b"
    ),
]
_URGENT = _rx(
    r"\b(?:urgent(?:ly)?|asap|immediately|critical|emergency|blocking|blocker|right now|deadline|losing (?:money|revenue|customers))\b"
)


def reports_problem(text: str) -> bool:
    return bool(_PROBLEM.search(text))


def is_question(text: str) -> bool:
    return any(_QUESTION.search(s) for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip())


def outage_language(text: str, requests: list[str] | None = None) -> bool:
    return any(p.search(text) for p in _OUTAGE) or _failing_everywhere(text, requests)


# Or a failure reported in all of them, without "our": "Syncs are failing in all workspaces since 9am". Only in a
# sentence that reports it (request_sentences), not one that asks or supposes ("what happens when syncs are failing
# in all workspaces?").
_FAILING_EVERYWHERE = _rx(
    r"\b(?:are|is|keep|kept|have been|has been|started|all)\s+(?:fail\w*|down|broken|stopped|erroring|timing out|not (?:working|running|syncing))\b[^.?!,;\n]{0,25}\b(?:in|across|for|on)\s+(?:all|every|each)\s+(?:of\s+)?(?:the\s+)?(?:\d+\s+)?workspaces?\b"
)


def _failing_everywhere(text: str, requests: list[str] | None = None) -> bool:
    requests = request_sentences(_plain(text)) if requests is None else requests
    return any(_FAILING_EVERYWHERE.search(sentence) for sentence in requests)


def many_affected(text: str, requests: list[str] | None = None) -> bool:
    return any(p.search(text) for p in _MANY_USERS) or _failing_everywhere(text, requests)


def urgent(text: str) -> bool:
    return bool(_URGENT.search(text))


# --------------------------------------------------------------------------- instructions aimed at a model

_INJECTION = [
    _rx(
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.?!\n]{0,40}\b(?:previous|prior|above|earlier|all|any|your|the|system|safety)\b[^.?!\n]{0,30}\b(?:instructions?|prompts?|rules?|polic(?:y|ies)|guidelines?|guardrails?|directions?|constraints?)\b"
    ),
    _rx(
        r"\b(?:you are now|from now on,? you|act as|pretend (?:to be|you are)|roleplay as|you must now|new instructions?|system prompt|developer mode|jailbreak|dan mode)\b"
    ),
    _rx(
        r"\b(?:as an? (?:ai|assistant|language model|support bot)|(?:ai|assistant|bot|model|llm|chatgpt|claude)s?\b[^.?!\n]{0,30}\b(?:must|should|shall|will) (?:always|now|immediately)?\s*(?:approve|refund|grant|issue|reply|respond|say|tell|ignore))\b"
    ),
    _rx(
        r"\b(?:approve|issue|grant|process)\b[^.?!\n]{0,20}\b(?:all|any|every|this|the)\b[^.?!\n]{0,20}\b(?:refunds?|requests?|credits?)\b[^.?!\n]{0,30}\b(?:automatically|without (?:asking|approval|review|checking))\b"
    ),
    _rx(
        r"<\s*/?\s*(?:system|instructions?|prompt|assistant)\s*>|\[\s*(?:system|inst)\s*\]|###\s*(?:system|instruction)"
    ),
    # Role labels written the way chat transcripts are ("SYSTEM: …"); upper case only, so "System: Windows 11" passes.
    # Only spaces on the same line may come between (a run of blank lines once cost seconds: each line break rescanned
    # the rest).
    re.compile(r"(?:^|[\n.!?])[^\S\n]*(?:SYSTEM|ASSISTANT|DEVELOPER)\s*:"),
]


def instruction_like(text: str) -> bool:
    """Text addressed to a model rather than to a reader: quoted as data, flagged, never obeyed."""
    return any(p.search(text) for p in _INJECTION)


# --------------------------------------------------------------------------- one pass over a message


@dataclass(frozen=True)
class Signals:
    requested_action: RequestedAction
    actions: list[str]
    sensitive_flags: list[str]
    wants_human: bool
    sentiment: str
    language: str
    problem: bool
    question: bool
    outage: bool
    many_affected: bool
    urgent: bool
    injection: bool
    notes: list[str] = field(default_factory=list)


def detect(text: str, *, default_language: str = "en") -> Signals:
    requests = request_sentences(_plain(text))
    actions = all_requested_actions(text, requests)
    return Signals(
        requested_action=requested_action(text, actions),
        actions=actions,
        sensitive_flags=sensitive_flags(text, actions, requests),
        wants_human=wants_human(text, requests),
        sentiment=sentiment(text),
        language=language(text, default_language),
        problem=reports_problem(text),
        question=is_question(text),
        outage=outage_language(text, requests),
        many_affected=many_affected(text, requests),
        urgent=urgent(text),
        injection=instruction_like(text),
    )
