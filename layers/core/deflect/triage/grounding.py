"""Grounding rules shared by every answer composer: passages are data, answers quote them, citations are checked.

- `clean_passage` removes what a reader of the help center would never see or never read as help: HTML comments
  and hidden elements, markup, and sentences addressed to a model ("ignore previous instructions…"). Those are
  counted so the decision records that an article tried to instruct the assistant.
- `units` splits a passage into quotable units (sentences, list items), keeping numbered steps whole.
- `verify` checks a draft against the passages it claims to quote: every citation must name a retrieved
  article id + version and its quote must appear in that passage; a draft that promises an account action
  ("I have refunded…") is refused, since only a human approval can do that.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from deflect.domain.models import Citation, Draft
from deflect.knowledge.chunking import hidden_html
from deflect.triage.detectors import _STOPWORDS, all_requested_actions, instruction_like
from deflect.triage.detectors import language as language_of

_TAG = re.compile(r"</?[a-z][^>]*>", re.I)
_ZERO_WIDTH = re.compile(r"[\u200b-\u200f\u2060-\u2064\ufeff]")
_UNIT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*`])|\n+")
_MARKDOWN_NOISE = re.compile(r"^\s*(?:#{1,6}\s+|>\s*)|\*\*|__|`")
# Promises of an effect only a human approval can cause. The audit found the past-tense "we cancelled…" pattern let
# "Your subscription has been cancelled", "We'll cancel your subscription" and "We will refund your annual plan"
# reach customers in auto mode, so both voices are caught in every tense: a first person (we, I, our team) who has
# done, is doing or will do it, and the customer's account thing that has been, is now or will be changed.
# Help-center how-tos are not promises and stay quotable: what happens when the customer acts ("When you cancel,
# your plan stays active…", "If you downgrade, your plan will be downgraded at renewal"), present-tense rules
# ("Your plan is upgraded immediately…", "Refunds are issued to the original payment method…") and hypotheticals
# ("if your account was deleted…"). Every sentence of infra/local/demo/helpcenter passes.
_PROMISE_THING = (
    r"(?:account|subscription|plan|workspace|team|organi[sz]ation|org|seats?|refund|credits?|charges?|payments?"
    r"|invoices?|orders?|billing|fees?|discount|coupon|promo(?:tion)?(?: code)?|trial|(?:email|e-mail) address"
    r"|(?:(?<=your )|(?<=account's )|(?<=account )|(?<=login ))e-?mail|mfa|2fa|two[- ]factor(?: authentication)?"
    r"|multi[- ]factor(?: authentication)?|password|ownership|owner|role|data|card|renewal|auto-?renew(?:al)?"
    r"|money|cancellation|deletion|downgrade|upgrade|request)\b"
)
# Verbs whose first-person use is a promise whatever follows ("we'll refund", "I've cancelled").
_PROMISE_VERB = (
    r"(?:refund(?:ed|ing)?|credit(?:ed|ing)?|cancel(?:l?ed|l?ing)?|waiv(?:e|ed|ing)|upgrad(?:e|ed|ing)"
    r"|downgrad(?:e|ed|ing)|delet(?:e|ed|ing)|(?:sen[dt]|sending|pa(?:y|id|ying)|giv(?:e|en|ing)|gave)"
    r"\s+(?:[\w%$€£.,'-]+\s+){0,3}?back)\b"
)
# Verbs that promise an account action only with an account thing as object ("we'll reset your 2FA", not "we'll
# update this article").
_OBJECT_VERB = (
    r"(?:clos(?:e|ed|ing)|remov(?:e|ed|ing)|reset(?:ting)?|chang(?:e|ed|ing)|updat(?:e|ed|ing)|switch(?:ed|ing)?"
    r"|mov(?:e|ed|ing)|transfer(?:red|ring)?|extend(?:ed|ing)?|appl(?:y|ied|ying)|issu(?:e|ed|ing)"
    r"|process(?:ed|ing)?|approv(?:e|ed|ing)|disabl(?:e|ed|ing)|turn(?:ed|ing)? off|deactivat(?:e|ed|ing)"
    r"|reactivat(?:e|ed|ing)|restor(?:e|ed|ing)|terminat(?:e|ed|ing)|revers(?:e|ed|ing)|void(?:ed|ing)?"
    r"|add(?:ed|ing)?|submit(?:ted|ting)?|initiat(?:e|ed|ing)|arrang(?:e|ed|ing)|return(?:ed|ing)?|unlock(?:ed|ing)?"
    r"|enabl(?:e|ed|ing)|activat(?:e|ed|ing)|grant(?:ed|ing)?|rais(?:e|ed|ing)|increas(?:e|ed|ing)|lift(?:ed|ing)?"
    r"|eras(?:e|ed|ing)|wip(?:e|ed|ing)|purg(?:e|ed|ing)|confirm(?:ed|ing)?)\b"
)
_PROMISE_OBJECT = (
    rf"\s+(?:(?:it|them|that)(?=\s*(?:$|[.,;:!?)]|for\b|on\b|now\b|today\b|right away\b|immediately\b|and\b))"
    rf"|(?:[\w%$.,'-]+\s+){{0,3}}?{_PROMISE_THING}"
    r"|[^.!?;]{0,40}?\b(?:for you|on your behalf|for your (?:workspace|account|team|org(?:ani[sz]ation)?|subscription"
    r"|plan))\b)"
)
_WE = r"\b(?:i|we|our (?:[\w-]+ )?team|(?:our |the )?(?:billing|support|finance)(?: (?:team|support|department))?)"
# Auxiliaries between the person and the verb: "we've", "I'll", "we are going to", "I have gone ahead and", "we just",
# "I'd be happy to" (and "let me…"). Not "can", "would" or a negation: "we can't refund…", "we would refund…" and
# the present-tense policy "we refund the extra charge" promise nothing to this customer.
_WE_AUX = (
    r"(?:\s*(?:'ve|'ll|'re|'m|'s|'d be (?:happy|glad) to)\b|\s+(?:have|has|will|shall|are|am|is|just|now|already"
    r"|also|then|successfully|going to|gone ahead and|went ahead and|go ahead and|(?:be )?(?:happy|glad) to"
    r"|would be (?:happy|glad) to)\b)"
)
_WE_PAST = (
    r"(?:refunded|credited|cancell?ed|waived|upgraded|downgraded|deleted"
    r"|(?:sent|paid|gave)\s+(?:[\w%$€£.,'-]+\s+){0,3}?back)\b"
)
_WE_OBJECT_PAST = (
    r"(?:closed|removed|reset|changed|updated|switched|moved|transferred|extended|applied|issued|processed"
    r"|approved|disabled|turned off|deactivated|reactivated|restored|terminated|reversed|voided|added|submitted"
    r"|initiated|arranged|returned|unlocked|enabled|activated|granted|raised|increased|lifted|erased|wiped|purged"
    r"|confirmed)"
)
_FIRST_PERSON_PROMISE = re.compile(
    rf"{_WE}(?:{_WE_AUX}{{1,5}}\s+(?:{_PROMISE_VERB}|{_OBJECT_VERB}{_PROMISE_OBJECT})"
    rf"|\s+(?:{_WE_PAST}|{_WE_OBJECT_PAST}{_PROMISE_OBJECT}))"
    rf"|\blet me\s+(?:{_PROMISE_VERB}|{_OBJECT_VERB}{_PROMISE_OBJECT})",
    re.I,
)
# The customer's account thing changed: "your subscription has been cancelled", "a refund has been issued to your
# card", "two-factor authentication has been reset", "you've been credited", "your plan will be upgraded". The
# audit after that found a noun phrase between the thing and its verb ("a refund of $50 has been issued"), an
# amount as the thing ("$50 has been returned to your card") and limits and features ("your limit has been raised").
_AMOUNT = r"\d+(?:,\d{3})*(?:\.\d+)?"
_CHANGED_THING = (
    rf"(?:\byour\s+(?:[\w'-]+\s+){{0,2}}?(?:{_PROMISE_THING}|(?:limits?|quotas?|features?|access|storage)\b)"
    r"|\b(?:a|an|the|this|that)\s+(?:[\w%$.,'-]+\s+){0,2}?(?:refund|credit|discount|coupon|cancellation|deletion"
    r"|downgrade|upgrade|charge|fee|trial|plan change|email change|transfer|request|subscription|account|plan"
    r"|money|funds|amount|payment|features?|limit)\b"
    r"|\b(?:two[- ]factor authentication|2fa|mfa|multi[- ]factor authentication|ownership)\b"
    # An amount starts where no digit or comma comes before it and its groups do not overlap: "\d[\d,]*" tried at
    # every digit of "12,12,12,…" made the check quadratic.
    rf"|(?<![\w$€£¥₹])[$€£¥₹]\s?{_AMOUNT}|(?<![\w,]){_AMOUNT}\s?(?:usd|eur|gbp|dollars|euros|pounds)\b"
    r"|\byou\b)"
    # "… of $50", "… for your March invoice": a few words naming which one, before the verb.
    r"(?:\s+(?:of|for|on)\s+[^\s!?;:]+(?:\s+[^\s!?;:]+){0,3}?)?"
)
_PARTICIPLE = (
    r"(?:\s+(?:now|already|just|also|successfully|fully|officially|automatically))*\s+"
    r"(?:cancell?ed|refunded|deleted|closed|upgraded|downgraded|changed|updated|reset|credited|processed|approved"
    r"|issued|removed|extended|waived|transferred|applied|disabled|turned off|switched off|switched|moved"
    r"|reactivated|deactivated|restored|terminated|reversed|voided|completed?|done|scheduled|initiated|submitted"
    r"|granted|confirmed|returned|(?:sent|paid|given|credited|refunded) back|unlocked|enabled|activated|turned on"
    r"|increased|raised|lifted|reduced|decreased|lowered|erased|wiped|purged|destroyed|anonymi[sz]ed|off"
    r"|set to (?:cancel|downgrade|expire|close))\b"
)
# Has been / is now / went through: a statement that it happened. Will be / is: also how a how-to describes what
# follows the customer's own step, so those are promises only outside such a sentence (and "is" only ending its
# clause, or with "now" or a new value: "your plan is upgraded immediately" is the rule, "your subscription is
# cancelled now", "your trial is extended by 14 days" and "your email is changed to …" are the news).
_DONE = re.compile(
    rf"{_CHANGED_THING}\s*(?:(?:'s|has|have|had)(?:\s+(?:now|already|just|also))*\s+been|'ve\s+been|was|were|got"
    rf"|(?:is|are|'s|'re)\s+(?:now|being))\b{_PARTICIPLE}"
    rf"|{_CHANGED_THING}\s*(?:(?:'s|has|have)(?:\s+(?:now|already|just|also))*\s+gone|went)\s+through\b"
    rf"|{_CHANGED_THING}\s*(?:is|are|'s|'re)\s+(?:now\s+)?on\s+(?:its|their|the)\s+way\b"
    r"|\b(?:you(?:'re|\s+are)|your\s+(?:workspace|account|team|subscription|organi[sz]ation)\s+is)\s+now\s+on\s+"
    r"(?:the\s+|a\s+)?[\w-]+(?:\s+[\w-]+)?\s+(?:plan|tier)\b"
    r"|\b(?:you(?:'re|\s+are)|your\s+(?:workspace|account|team|subscription|organi[sz]ation)\s+is)\s+on\s+"
    r"(?:the\s+|a\s+)?[\w-]+(?:\s+[\w-]+)?\s+(?:plan|tier)\s+now\b"
    r"|\byour\s+(?:[\w-]+\s+){0,2}?(?:e-?mail|login|username)(?:\s+address)?\s+(?:is\s+now|now\s+is)\s+[^\s@]+@"
    r"|\byou(?:'ve|\s+have)?\s+(?:got|gotten|received|been\s+(?:given|sent|issued))\s+(?:a|an|your|the)\s+"
    r"(?:[\w%$.,-]+\s+){0,2}?(?:refund|credit|reimbursement)\b"
    # Idioms of a finished job: "consider it done", "that's done", "it's been taken care of".
    r"|\bconsider it (?:done|handled|sorted)\b"
    r"|\b(?:that|it|this|everything|all)(?:'s|\s+is|\s+has\s+been|'s\s+been)\s+(?:now\s+|all\s+|already\s+)?"
    r"(?:done|taken care of|sorted(?: out)?|handled)\b(?!\s+(?:by|in|from|with|under|through|via|using|when|if|once)\b)"
    # A headline: "Refund approved.", "Refund issued: $50.", "Cancellation confirmed."
    r"|(?:^|[:;—–]\s*)\W*(?:your\s+)?(?:(?:full|partial)\s+)?(?:refund|credit|cancellation|deletion|erasure|downgrade"
    r"|upgrade|plan change|email change|(?:mfa|2fa) reset|trial extension|transfer)(?:\s+request)?\s*[:\s–—-]\s*"
    r"(?:approved|issued|confirmed|processed|completed?|done|granted|sent|initiated|submitted|scheduled)\b",
    re.I,
)
_TO_BE_DONE = re.compile(
    rf"{_CHANGED_THING}\s*(?:(?:will|'ll)(?:\s+(?:now|also|then))?\s+be|(?:is|are|'s|'re)\s+going\s+to\s+be"
    rf"|(?:is|are)\s+(?:scheduled|set)\s+to\s+be)\b{_PARTICIPLE}"
    rf"|{_CHANGED_THING}\s+(?:is|are){_PARTICIPLE}(?=\s*(?:$|[.,;:!)—–]|-\s|and\b|so\b|as of\b|effective\b|today\b"
    r"|now\b|for you\b|on your behalf\b|for your (?:workspace|account|team|org(?:ani[sz]ation)?|subscription|plan)\b"
    r"|(?:to|by)\s+(?:[$€£¥₹]?\d|[^\s@]+@|(?:the\s+)?[\w-]+\s+(?:plan|tier)\b)))"
    r"|\byou(?:'ll|\s+will)\s+(?:receive|get|see)\s+(?:a|an|your)\s+(?:[\w%$.,-]+\s+){0,2}?(?:refund|credit)\b"
    # What the change means for the customer: "your plan will not renew", "you won't be charged again".
    rf"|{_CHANGED_THING}\s+(?:will\s+not|won't|will\s+no\s+longer|is\s+not\s+going\s+to|isn't\s+going\s+to)\s+"
    r"(?:auto-?)?renew\b"
    r"|\byou(?:'ll|\s+will)?\s*(?:won't|will\s+not|will\s+no\s+longer)\s+be\s+(?:charged|billed|invoiced)\b"
    r"(?:\s+[\w$€£.,-]+){0,4}?\s+(?:again|anymore|any more|any longer|from now on|going forward)\b"
    rf"|{_CHANGED_THING}\s+(?:will|'ll)\s+(?:end|stop|expire|close|terminate)\s+(?:today|now|immediately|right away"
    r"|tonight)\b",
    re.I,
)
# "If your account was deleted…", "check whether your refund has been processed": a case, not news.
_HYPOTHETICAL = re.compile(
    r"\b(?:if|when|whenever|once|after|unless|until|whether|before|in case|as soon as|even if)\s*$", re.I
)
# "When you downgrade, your plan will be…", "…will be refunded if you cancel within 30 days": the customer's step.
_STEP = (
    r"(?:if|when|whenever|once|after|as soon as|as long as|unless)\s+(?:you|an? (?:owner|admin)|the owner)\b"
)
# Also a condition that is not ours to meet ("Once auto-renew is off, your plan will not renew"), and a purpose
# ("Turn off auto-renew so your plan will not renew"); "When we process it, your refund will be…" is still ours.
_STEP_BEFORE = re.compile(
    rf"^\W*{_STEP}|\b{_STEP}[^,;]*,\s*$"
    r"|^\W*(?:if|when|whenever|once|after|as soon as|unless)\s+(?!we\b|i\b|our\b|us\b|the (?:billing|support)\b)"
    r"[^,;]*,\s*$"
    r"|\bso(?:\s+that)?\s*$|\b(?:to make sure|to ensure|in order that)(?:\s+that)?\s*$",
    re.I,
)
# The words between the change and the step may hold a number: "…is raised to 50,000 runs when you upgrade".
_STEP_AFTER = re.compile(rf"^(?:\s+(?!and\b|so\b|but\b)[\w$€£¥₹%'-]+(?:[.,]\d+)*){{0,6}}?,?\s+{_STEP}", re.I)
_PROMISE_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class _Completion:
    """How one language says an account action is done: `done` (a perfect, a past passive, "now"/"already" with
    a state, or a first-person future), in a clause that is not a condition (`condition`, any clause), a relative
    clause after a comma (`relative`: "…, die bereits ausgezahlt wurde,") or a question or condition led by the
    verb (`verb_first`, first clause only: "Wurde Ihr Abonnement gekündigt, …")."""

    done: re.Pattern[str]
    condition: re.Pattern[str]
    relative: re.Pattern[str] | None = None
    verb_first: re.Pattern[str] | None = None
    # The detectors know "kündigen" and "löschen", not the participles "gekündigt" and "gelöscht" (nor
    # "zurückgesetzt"): this makes the participle look like its stem before they read the sentence.
    stem: tuple[re.Pattern[str], str] | None = None


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


_PARTICIPLE_ROMANCE = r"\w+(?:ad|id)[oa]s?"
# The languages the detectors read requests in (de, es, fr, pt, it, nl). Which words name the action is theirs
# (detectors.all_requested_actions: "gekündigt", "Rückerstattung", "reembolsado", "résilié", …); these are only the
# tense and voice that say it happened. A state without "now"/"already" ("La double authentification est
# désactivée") is how a help center describes a default, so it is left out.
_DONE_ABROAD = (
    _Completion(  # de: "wurde gekündigt", "wir haben … gekündigt", "ist jetzt gekündigt", "wir werden … erstatten"
        _rx(
            r"\b(?:wurden?|worden)\b|\b(?:wir|ich)\s+(?:haben|habe|hatten|hatte|werden|werde)\b"
            r"|\b(?:haben|habe|hatten|hatte|werden|werde)\s+(?:wir|ich)\b"
            r"|\b(?:ist|sind)\s+(?:jetzt|nun|bereits|schon|erfolgreich|ab\s+sofort)\b"
        ),
        _rx(r"^\W*(?:wenn|falls|sobald|nachdem|ob|bevor|bis|sofern|solange|wann|damit|dass|sodass)\b"),
        _rx(r"^\W*(?:der|die|das|dem|den|deren|dessen|welche[rsmn]?)\b"),
        _rx(r"^\W*(?:wurden?|ist|sind|haben|hat|hatten?|werden?|wird)\b"),
        (_rx(r"\b(zurück|rück|ab|an|auf|aus|ein|um|frei)?ge(?=\w{3,}(?:t|en)\b)"), r"\1"),
    ),
    _Completion(  # es: "hemos cancelado", "ha sido reembolsado", "se ha eliminado", "ya está", "le reembolsaremos"
        _rx(
            rf"\b(?:he|hemos|ha|han)\s+(?:sido\s+)?(?:\w+\s+)?{_PARTICIPLE_ROMANCE}\b"
            rf"|\b(?:fue|fueron)\s+(?:\w+\s+)?{_PARTICIPLE_ROMANCE}\b"
            r"|\b(?:ya|ahora)\s+(?:est[áa]n?|qued[óo]|quedaron)\b"
            r"|\b(?:vamos|voy)\s+a\s+\w+(?:ar|er|ir)\b|\b\w{2,}(?:aremos|eremos|iremos|aré|eré|iré)\b"
        ),
        _rx(
            r"^\W*(?:si|cuando|una\s+vez|despu[ée]s\s+de|tras|hasta\s+que|antes\s+de|en\s+cuanto|siempre\s+que"
            r"|mientras|aunque|que|el\s+cual|la\s+cual|los\s+cuales|las\s+cuales|donde)\b"
        ),
    ),
    _Completion(  # fr: "nous avons résilié", "a été remboursé", "est désormais supprimé", "nous rembourserons"
        _rx(
            r"\b(?:nous\s+avons|j'ai|avons-nous|ai-je)\b"
            r"|\b(?:a|ont|avons|avez|aura|auront|ait)\s+(?:bien\s+|déjà\s+|maintenant\s+|désormais\s+)?été\b"
            r"|\b(?:est|sont)\s+(?:désormais|maintenant|bien|déjà)\s+\w+"
            r"|\bnous\s+allons\b|\bje\s+vais\b|\b\w{2,}(?:erons|irons|drons|rrons|erai|irai|rrai|drai)\b"
        ),
        _rx(
            r"^\W*(?:si|s'|quand|lorsque?|lorsqu'|une\s+fois|apr[èe]s|d[èe]s\s+que|avant\s+que|jusqu'|tant\s+que"
            r"|qui|que|qu'|dont|o[ùu]|m[êe]me\s+si)"
        ),
    ),
    _Completion(  # pt: "foi reembolsado", "já cancelamos", "vamos cancelar", "reembolsaremos"
        _rx(
            rf"\b(?:foi|foram)\s+(?:\w+\s+)?{_PARTICIPLE_ROMANCE}\b|\bj[áa]\s+\w+(?:amos|emos|imos|ei)\b"
            r"|\b(?:vamos|vou|iremos|irei)\s+\w+(?:ar|er|ir)\b|\b(?:acabamos|acabei)\s+de\b"
            r"|\b\w{2,}(?:aremos|eremos|iremos)\b"
        ),
        _rx(
            r"^\W*(?:se|quando|assim\s+que|depois\s+(?:que|de)|caso|antes\s+(?:que|de)|at[ée]\s+que|que|o\s+qual"
            r"|a\s+qual|onde|embora)\b"
        ),
    ),
    _Completion(  # it: "è stato annullato", "abbiamo rimborsato", "ho annullato", "rimborseremo"
        _rx(
            r"\b(?:è|e'|sono)\s+(?:gi[àa]\s+)?stat[oaie]\b|\babbiamo\s+(?:gi[àa]\s+)?\w+(?:at|it|ut)[oaie]\b"
            r"|\bho\s+(?:gi[àa]\s+)?\w+(?:at|it|ut)[oaie]\b|\b\w{2,}(?:eremo|iremo|erò|irò)\b"
        ),
        _rx(
            r"^\W*(?:se|quando|una\s+volta|dopo|appena|non\s+appena|prima\s+che|finch[ée]|che|il\s+quale|la\s+quale"
            r"|dove|anche\s+se)\b"
        ),
    ),
    # nl: "werd terugbetaald" ("werden" is also German), "we hebben … verwijderd", "is nu opgezegd", "we zullen …"
    _Completion(
        _rx(
            r"\bwerd\b|\b(?:we|wij|ik)\s+(?:hebben|heb|zullen|zal)\b|\b(?:hebben|heb|zullen|zal)\s+(?:we|wij|ik)\b"
            r"|\b(?:is|zijn)\s+(?:nu|inmiddels|zojuist|net|al)\s+\w+"
        ),
        _rx(r"^\W*(?:als|wanneer|zodra|nadat|indien|of|voordat|totdat|tenzij|waar)\b"),
        _rx(r"^\W*(?:die|dat)\b"),
    ),
)
_CLAUSE = re.compile(r"([,;:()]|\s[–—-]\s)")


def _says_done_abroad(sentence: str) -> bool:
    """A sentence that names an account action (in any language the detectors read) and, in a clause that is
    neither a condition nor a relative clause, says in one of those languages that it was or will be done."""
    parts = _CLAUSE.split(sentence)
    clauses = [("", parts[0]), *zip(parts[1::2], parts[2::2], strict=True)]
    for position, (separator, clause) in enumerate(clauses):
        for language in _DONE_ABROAD:
            if not language.done.search(clause) or language.condition.search(clause):
                continue
            if separator == "," and language.relative is not None and language.relative.search(clause):
                continue
            if position == 0 and language.verb_first is not None and language.verb_first.search(clause):
                continue
            if language.stem is not None:
                sentence = language.stem[0].sub(language.stem[1], sentence)
            return bool(actions_named(sentence))
    return False


@dataclass(frozen=True)
class CleanPassage:
    article_id: str
    version: int
    title: str
    text: str
    score: float
    stale: bool
    heading_path: tuple[str, ...] = ()
    url: str | None = None
    dropped_instructions: int = 0


def clean_text(text: str) -> tuple[str, int]:
    """Visible, instruction-free text and the number of sentences dropped as instructions to a model."""
    text = _ZERO_WIDTH.sub("", text or "")
    # HTML left in a passage (inline HTML of a Markdown article, or an article indexed before the chunker dropped
    # it): comments and hidden elements, however nested, as the chunker finds them; then every other tag.
    shown, position = [], 0
    for start, end in hidden_html(text):
        shown.append(text[position:start])
        position = end
    text = " ".join([*shown, text[position:]])
    text = _TAG.sub(" ", text)
    kept, dropped = [], 0
    for line in text.split("\n"):
        pieces = [p for p in _UNIT_SPLIT.split(line) if p.strip()]
        good = [p for p in pieces if not instruction_like(p)]
        dropped += len(pieces) - len(good)
        if good or not pieces:
            kept.append(" ".join(good).rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip(), dropped


def clean_passage(hit: Any) -> CleanPassage:
    """A knowledge SearchHit (or anything with the same fields) as data fit to quote."""
    text, dropped = clean_text(getattr(hit, "text", ""))
    return CleanPassage(
        article_id=hit.article_id,
        version=int(hit.version),
        title=_TAG.sub("", getattr(hit, "title", "") or "").strip(),
        text=text,
        score=float(getattr(hit, "score", 0.0)),
        stale=bool(getattr(hit, "stale", False)),
        heading_path=tuple(getattr(hit, "heading_path", []) or []),
        url=getattr(hit, "url", None),
        dropped_instructions=dropped,
    )


@dataclass(frozen=True)
class Unit:
    """One quotable sentence, list item or table row, with the heading of the section it sits in."""

    heading: str
    text: str


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_TABLE_ROW = re.compile(r"^\s*\|")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*`])")


# "See "Run credits and overages" for …", "If it keeps failing, see "…"": a sentence that sends the reader to
# another article by name.
_POINTER = re.compile(
    r"^(?:\W*(?:(?:for (?:details|more)|if|when)[^,]*,\s*)?(?:see|read|refer to|check out)\b[^.]*[\"“'](?=.*[\"”'])"
    r"|(?:see also|related articles?)\b)",
    re.I,
)


def is_pointer(unit_text: str) -> bool:
    """True for a cross-reference to another article: it names where the answer is, it is not the answer."""
    return bool(_POINTER.match(unit_text.strip()))


def _quotable(piece: str) -> str | None:
    piece = _MARKDOWN_NOISE.sub("", piece).strip()
    return piece if len(piece) >= 12 and re.search(r"[A-Za-z]{3}", piece) else None


def units(text: str) -> list[Unit]:
    """Quotable units in reading order. Wrapped lines are joined back into their paragraph; headings are not
    units (they label the units under them); list items and table rows stay whole."""
    out: list[Unit] = []
    heading = ""
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            joined = " ".join(paragraph)
            # A list item stays whole ("1. Open Settings…" keeps its number); prose splits into sentences.
            pieces = [joined] if _LIST_ITEM.match(joined) else _SENTENCE.split(joined)
            for sentence in pieces:
                if quote := _quotable(sentence):
                    out.append(Unit(heading, quote))
            paragraph.clear()

    lines = text.split("\n")
    for number, line in enumerate(lines):
        header_row = number + 1 < len(lines) and bool(_TABLE_RULE.match(lines[number + 1]))
        if match := _HEADING.match(line):
            flush()
            heading = _MARKDOWN_NOISE.sub("", match.group(1)).strip()
        elif not line.strip() or _TABLE_RULE.match(line):
            flush()
        elif _TABLE_ROW.match(line):
            flush()
            if not header_row and (quote := _quotable(line.strip().strip("|").strip())):
                out.append(Unit(heading, quote))
        elif _LIST_ITEM.match(line):
            flush()
            paragraph.append(line.strip())
        else:
            paragraph.append(line.strip())
    flush()
    return out


_STOP = frozenset(
    """a able about again all also an and any are as at be been being but by can can't could did do does
    doesn't doing don't each ever every find for from get give got had has have hello help here hey hi
    how i i'm if in into is isn't it it's its just know make may me might more most must my need needs
    no not of on only or other our please possible see shall should show so some still such tell than
    thank thanks that the then there there's these this those to too us use used using very want wants
    was way ways we we're were what what's when where which who whom whose why will with would yes you
    your actually anyone anything basically currently everyone good quick question really someone somebody
    something through""".split()  # noqa: SIM905 - a word list reads better as text
)
# Words keep their inner apostrophes, so "don't" is the stop word it is (not "don"), and "someone's" is "someone".
_TERM = re.compile(r"[a-z0-9][a-z0-9_'-]*[a-z0-9]|[a-z0-9]")
_APOSTROPHES = str.maketrans("\u2018\u2019\u02bc", "'''")


def _stem(word: str) -> str:
    return word[:5] if len(word) > 5 else word.rstrip("s")


def content_terms(text: str, ignore: Iterable[str] = ()) -> set[str]:
    """Lower-cased, crudely stemmed words that carry the question's meaning (stop words dropped)."""
    skip = {_stem(w) for w in ignore}
    words = (w.removesuffix("'s") for w in _TERM.findall(text.lower().translate(_APOSTROPHES)))
    return {_stem(w) for w in words if w not in _STOP and len(w) > 1} - skip


def coverage(question: str, passage_text: str, ignore: Iterable[str] = ()) -> float:
    """Share of the question's content terms that the passage mentions: a quote that never names what the
    customer asked about ("does it support Airtable?") does not answer it, however similar it sounds."""
    return _share(content_terms(question, ignore), content_terms(passage_text))


def _share(wanted: set[str], present: set[str]) -> float:
    if not wanted:
        return 1.0
    # "mac" is covered by "macos", "config" by "configuration": prefixes of three letters or more match.
    found = {
        t
        for t in wanted
        if t in present
        or (len(t) >= 3 and any(p.startswith(t) or t.startswith(p) for p in present if len(p) >= 3))
    }
    return len(found) / len(wanted)


# Capitalised words that name a time, not a thing the help center could be silent about.
_CALENDAR = frozenset(
    (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december",
    )
)  # fmt: skip
_NAME_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9+#.-]*[A-Za-z0-9+#]|[A-Za-z]")


def named_things(question: str) -> list[str]:
    """Words the customer capitalised inside a sentence ("Airtable", "OneDrive", "iOS"): the names of apps,
    products and systems they ask about. A sentence's first word and stop words say nothing."""
    names: list[str] = []
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", question.strip()):
        for position, token in enumerate(_NAME_TOKEN.findall(sentence)):
            word = token.lower()
            if position == 0 or token == "I" or word in _STOP or word in _CALENDAR:
                continue
            if any(ch.isupper() for ch in token):
                names.append(word)
    return names


def unmentioned_names(question: str, passage_texts: Iterable[str]) -> list[str]:
    """The question's named things that none of the passages mentions: what the help center (as far as search
    could find) says nothing about. "macs" is mentioned by "macOS"."""
    text = " ".join(passage_texts).lower()
    present = content_terms(text)
    missing = []
    for name in named_things(question):
        if name in text:
            continue
        # An error code is named exactly: SB-1001 does not mention SB-1003.
        if any(ch.isdigit() for ch in name):
            missing.append(name)
            continue
        # A longer word may mention a name ("macos" mentions "mac"), never a shorter one: "one" is not "onedrive".
        stem = _stem(name)
        if not any(p == stem or (len(stem) >= 3 and p.startswith(stem)) for p in present):
            missing.append(name)
    return missing


# A question naming an app, product or code that no retrieved passage mentions ("can it sync Airtable?" against
# the Salesforce article) keeps this share of its answer's confidence, whichever composer wrote the answer. On
# tests/knowledge_cases/customer_questions.jsonl, on-topic questions no article answers were answered 31.2 -> 22.5 %
# at 68.4 -> 67.8 % of answerable ones right (docs/answer-confidence.md).
UNMENTIONED_NAME_FACTOR = 0.6


def discount_unmentioned_names(draft: Draft, question: str, passages: Sequence[CleanPassage]) -> Draft:
    """The draft with less confidence when the question names what no retrieved passage mentions: search would
    have found an article naming it, so the help center says nothing about it. Only the count is kept on the
    draft; the names are the customer's words. A greeting or sign-off ("Cheers, Tom") names nothing asked about."""
    from deflect.knowledge.search import focus

    seen = (" ".join([p.title, *p.heading_path, p.text]) for p in passages)
    missing = unmentioned_names(focus(question), seen)
    if not missing:
        return draft
    return draft.model_copy(
        update={
            "confidence": round(draft.confidence * UNMENTIONED_NAME_FACTOR, 4),
            "unmentioned_names": len(missing),
        }
    )


# "We don't have Okta", "our SSO provider is not Okta", "we use Azure AD, not Okta", "without Okta", "other than
# Okta", "we don't use Okta or OneLogin": the customer rules a name out. An answer from the article about it (the
# Okta steps) is then the wrong answer however well it matches, and is rejected (verify, "negated_name"). Narrow
# on purpose: "I can't sign in with Okta" and "Okta isn't working" report a problem with what they use, and
# "we don't have SSO enabled yet" says what they want to get, so a modal ("can't"), a verb other than have/use/run
# before the name, a state after it ("enabled", "set up", "yet") or a mention of the name elsewhere without a
# negation keeps the name in play. So does "never used" ("we never used the REST API": new to it, asking how),
# and a name that only describes the noun after it ("we don't use HubSpot associations": they do use HubSpot).
_NEGATED_BEFORE = re.compile(
    # "is not Okta", "don't have Okta", "never had an Okta account" (not "I'm not an Admin": a role, not a tool)…
    r"(?:(?:(?:^|[,;(—–-]|\b(?:do|does|did|is|are|was|were|am|have|has|had)|'m|'re|'s)\s*not"
    r"|\b(?:do|does|did|is|are|was|were|have|has|had)n't|\bnever(?!(?:\s+\w+)?\s+(?:used|been\s+using)\b)"
    r"|\bkein(?:e[nmrs]?)?|\bnicht|\bpas"
    r"|\bno\s+(?:usamos|utilizamos|tenemos|uso|utilizo|tengo|usa|utiliza|tiene))"
    r"(?:\s+(?:currently|actually|really|even|yet|ever))?"
    r"(?:\s+(?:have|has|had|having|use|uses|used|using|run|runs|running|got|own|owns|been\s+using)"
    r"(?:\s+(?:an?|the|any|our|my))?)?"
    # … "without (an) Okta", "other than Okta", "neither Okta nor OneLogin".
    r"|(?:\bwithout|\bother\s+than|\binstead\s+of|\brather\s+than|\bexcept(?:\s+for)?|\bneither|\bnor|\bohne"
    r"|\bsin|\bsans)(?:\s+(?:an?|the|any|our|my))?)\s+$",
    re.I,
)
_NEGATED_LIST = re.compile(r"^\s*(?:,|/|,?\s*(?:or|nor|and|oder|o|ou|ni))\s*$", re.I)
_NAME_STATE_AFTER = re.compile(
    r"^\s*(?:enabled|set\s*up|configured|turned\s+on|activated|working|installed|connected|yet|access|option"
    r"|button|tab|menu|settings?|permissions?|rights|feature|page|screen)\b",
    re.I,
)
# The word after a name: a noun there ("HubSpot associations") is what is ruled out, not the name. Words that end
# the phrase instead ("we don't use Okta anymore") are stop words, these, and adverbs in -ly.
_WORD_AFTER = re.compile(r"[^\S\n]+([^\W\d_][\w'-]*)")
_NOT_A_NOUN = frozenset(
    """anymore either yet today now currently ourselves instead because since though although unless until while
    whereas nor""".split()  # noqa: SIM905 - a word list reads better as text
)
# Only the customer's own words are read: a pasted log or export rules nothing out, and reading all of it made the
# check quadratic (84 s for 64 KB). A negation is read in the few words right before the name.
NEGATION_READ_CHARS = 4_000
_NEGATION_WINDOW = 80


def _capitalised_name(token: str) -> bool:
    word = token.lower()
    return token != "I" and word not in _STOP and word not in _CALENDAR and any(ch.isupper() for ch in token)


def _mentions(name: str) -> str:
    return r"\s+".join(re.escape(word) for word in name.split())


def negated_names(question: str) -> list[str]:
    """The names (as named_things reads them; consecutive capitalised words are one name: "azure ad") the customer
    says they do not have or use, and mentions nowhere without saying so."""
    question = question[:NEGATION_READ_CHARS]
    negated: dict[str, int] = {}
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", question.strip()):
        tokens = list(_NAME_TOKEN.finditer(sentence))
        last_end, position = None, 1  # a sentence's first word says nothing
        while position < len(tokens):
            match = tokens[position]
            if not _capitalised_name(match.group(0)):
                position += 1
                continue
            # "Azure AD", "Google Authenticator": the capitalised words right after it are the same name.
            end = position + 1
            while (
                end < len(tokens)
                and _capitalised_name(tokens[end].group(0))
                and sentence[tokens[end - 1].end() : tokens[end].start()] in (" ", "-")
            ):
                end += 1
            start, stop = match.start(), tokens[end - 1].end()
            name = " ".join(token.group(0).lower() for token in tokens[position:end])
            before = sentence[max(0, start - _NEGATION_WINDOW) : start]
            if start > _NEGATION_WINDOW:
                before = re.sub(r"^\S*", "", before)  # not the tail of a cut word ("…can|not use")
            listed = last_end is not None and _NEGATED_LIST.match(sentence[last_end:start])
            after = sentence[stop : stop + _NEGATION_WINDOW]
            following = _WORD_AFTER.match(after)
            modifier = following is not None and (
                (word := following.group(1).lower()) not in _ANY_STOP
                and word not in _NOT_A_NOUN
                and not word.endswith("ly")
            )
            if (
                (listed or _NEGATED_BEFORE.search(before))
                and not modifier
                and not _NAME_STATE_AFTER.match(after)
            ):
                negated[name] = negated.get(name, 0) + 1
                last_end = stop
            else:
                last_end = None
            position = end
    return [
        name
        for name, count in negated.items()
        if len(re.findall(rf"(?<![\w-]){_mentions(name)}(?![\w-])", question, re.I)) == count
    ]


def _names(text: str, name: str) -> bool:
    """The text names every word of the name ("Set up SSO with Okta" names "okta sso")."""
    return all(
        re.search(rf"(?<![\w-]){re.escape(word)}(?:s|'s)?(?![\w-])", text, re.I) for word in name.split()
    )


def _own_words(question: str) -> str:
    """What negated_names reads of a question: its first lines without greetings and sign-offs, line by line (focus
    joins its sentences, and would make a pasted log one sentence)."""
    from deflect.knowledge.search import focus

    return "\n".join(focus(line) for line in question[:NEGATION_READ_CHARS].splitlines() if line.strip())


def answers_about_negated_name(draft: Draft, cited: Sequence[CleanPassage], question: str) -> bool:
    """True when a name the customer ruled out is what the answer is about: its lead quote, or most of its quotes,
    come from an article whose title, or a section whose heading, names it. A name a quote only mentions ("an
    authenticator app (1Password, Google Authenticator, Authy)") does not make the answer about it, nor does an
    article on it the answer quotes after leading with another ("Open Beams and click New beam", then the CLI)."""
    ruled_out = negated_names(_own_words(question))
    if not ruled_out or not draft.citations:
        return False

    def about(citation: Citation) -> bool:
        own = [p for p in cited if (p.article_id, p.version) == (citation.article_id, citation.version)]
        # The heading of the section it quotes, not of the article's other sections (an SSO article's "Okta"
        # section does not make its "Azure AD" steps an Okta answer).
        quote = normal_form(citation.quote)
        quoted = [p for p in own if quote and quote in normal_form(p.text)]
        texts = [*(p.title for p in own), *(" ".join(p.heading_path) for p in quoted)]
        return any(_names(text, name) for name in ruled_out for text in texts)

    verdicts = [about(citation) for citation in draft.citations]
    return verdicts[0] or 2 * sum(verdicts) > len(verdicts)


def normal_form(text: str) -> str:
    """How a quote is compared with the text it quotes: Markdown marks dropped, wrapped lines joined, case folded
    (a quotable unit has lost its `**`, backticks and line breaks)."""
    return re.sub(r"\s+", " ", _MARKDOWN_NOISE.sub("", text)).strip().lower()


# The promise patterns read what comes before a match ("if …", "when you …"): on a sentence of thousands of
# characters (a run of figures, a pasted export) that is quadratic. A longer sentence is read in overlapping windows
# of this many characters; a promise is a few dozen, and the overlap keeps each one whole in some window.
_PROMISE_WINDOW = 1_000
_PROMISE_OVERLAP = 200


def _sentence_windows(sentences: Iterable[str]) -> Iterable[str]:
    for sentence in sentences:
        if len(sentence) <= _PROMISE_WINDOW:
            yield sentence
            continue
        for start in range(0, len(sentence) - _PROMISE_OVERLAP, _PROMISE_WINDOW - _PROMISE_OVERLAP):
            yield sentence[start : start + _PROMISE_WINDOW]


def promises_action(text: str) -> bool:
    """True when the text tells the customer an account action (refund, credit, cancellation, deletion, plan or
    email change, 2FA or password reset, transfer, extension, waiver, discount) was, is being or will be done for
    them: only a human approval can do that. How-tos describing the customer's own steps are not promises."""
    for sentence in _sentence_windows(_PROMISE_SENTENCE.split((text or "").translate(_APOSTROPHES))):
        if _FIRST_PERSON_PROMISE.search(sentence):
            return True
        if any(not _HYPOTHETICAL.search(sentence[: m.start()]) for m in _DONE.finditer(sentence)):
            return True
        for match in _TO_BE_DONE.finditer(sentence):
            before = sentence[: match.start()]
            if _HYPOTHETICAL.search(before) or _STEP_BEFORE.search(before):
                continue
            if not _STEP_AFTER.search(sentence[match.end() :]):
                return True
        if _says_done_abroad(sentence):
            return True
    return False


# --------------------------------------------------------------------------- is each written sentence its quote's?

# A model-written sentence must say what its own quote says: the share of its content words (Unicode words, less
# the stop words of every language the detectors read) that the quote states must reach SUPPORT_MIN. Calibrated on
# the Bedrock tests' fixtures and paraphrases of their quotes (tests/unit/test_answer_promises_any_wording.py):
# legitimate sentences score 0.6 to 1.0 (the lowest adds "unless you turn off auto-renew" from the same passage
# to a quote that stops before it), the audit's invented account news against the same quotes 0.0 to 0.33. News
# told in the quote's own words ("Yes, that is done: your plan will not renew", 0.67) is promises_action's to
# catch. Extractive drafts quote themselves and score 1.0.
SUPPORT_MIN = 0.5
# A written sentence is judged whole and piece by piece (sentences within it); a piece with fewer content words
# than this ("Sure!", "Good news:") says nothing to check on its own. A piece that names an account action
# (detectors' vocabulary, any language they read) is always judged, and its quote must name the same action.
_SUPPORT_PIECE_TERMS = 2
_WORD = re.compile(r"[^\W_](?:[\w'-]*[^\W_])?")
# Function words of every language the detectors read (their language-detection lists), and ours.
_ANY_STOP = _STOP.union(*_STOPWORDS.values())


def _support_terms(text: str) -> set[str]:
    folded = unicodedata.normalize("NFC", text).casefold().translate(_APOSTROPHES)
    words = (w.removesuffix("'s") for w in _WORD.findall(folded))
    return {_stem(w) for w in words if w not in _ANY_STOP and len(w) > 1}


def support(sentence: str, quote: str) -> float:
    """Share of the sentence's content words that the quote states (1.0 for a sentence with none)."""
    return _share(_support_terms(sentence), _support_terms(quote))


def actions_named(text: str) -> list[str]:
    """The account actions (refund, cancel_subscription, delete_account, …) the text names, in the detectors'
    vocabulary of every language they read. The detectors read requests, verb first ("Konto löschen", "cancelar
    la suscripción"); news puts the thing first ("Ihr Konto wurde gelöscht", "su suscripción ha sido
    cancelada"), so the text is also read backwards."""
    backwards = " ".join(reversed(re.findall(r"[\w'-]+", text)))
    return list(dict.fromkeys([*all_requested_actions(text), *all_requested_actions(backwards)]))


def unsupported(sentence: str, quote: str, sites: Iterable[str] = ()) -> str | None:
    """Why a sentence written from a quote is not the quote's (None when it is): "unsupported_sentence",
    "unsupported_action:<kind>" for a sentence naming an account action its quote does not back, "unlisted_link"
    for a link that is neither in the quote nor on the cited articles' site (`sites`: their urls),
    "polarity_changed" (a negation in one and not the other), "limit_dropped" (the quote's "only" left out),
    "number_not_in_quote" or "name_not_in_quote"."""
    if any(not _link_listed(link, quote, sites) for link in _links(sentence)):
        return "unlisted_link"
    pieces = [p for p in _PROMISE_SENTENCE.split(sentence) if p.strip()]
    if support(sentence, quote) < SUPPORT_MIN:
        return "unsupported_sentence"
    quoted_actions: list[str] | None = None
    for piece in pieces:
        named = actions_named(piece)
        if named:
            quoted_actions = actions_named(quote) if quoted_actions is None else quoted_actions
            missing = [kind for kind in named if kind not in quoted_actions]
            if missing or support(piece, quote) < SUPPORT_MIN:
                return f"unsupported_action:{(missing or named)[0]}"
        elif len(_support_terms(piece)) >= _SUPPORT_PIECE_TERMS and support(piece, quote) < SUPPORT_MIN:
            return "unsupported_sentence"
    return _contradiction(sentence, quote)


# Word overlap cannot tell "SSO is available on the Enterprise plan only" from "SSO is not available on the
# Enterprise plan" or "… on the Starter plan": negations and "only" are stop words and a plan name is one word of
# several. The audit found both sent to customers as Bedrock answers, so a written sentence must also keep its
# quote's polarity and limits and name no number or name the quote does not. An extractive sentence is its quote.
# French negates with pas/jamais/rien/aucun, not "ne" alone ("n'est disponible que…" is a limit, see _LIMIT_FR).
_NEGATIONS = frozenset(
    """not no never cannot nothing nobody none nein nicht kein keine keinen keinem keiner keines nie niemals nichts
    niemand nunca nada nadie ningún ninguna ninguno pas jamais rien aucun aucune não nenhum nenhuma non nessun
    nessuno nessuna niente niet geen nooit niets""".split()  # noqa: SIM905 - a word list reads better as text
)
_LIMITS = frozenset(
    """only solely exclusively nur ausschließlich lediglich solo sólo solamente únicamente exclusivamente seulement
    uniquement exclusivement apenas somente soltanto unicamente alleen uitsluitend""".split()  # noqa: SIM905
)
_LIMIT_FR = re.compile(r"\bn(?:e\s+|')\S.*?\bqu(?:e\b|')", re.I)
_NUMBER = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?!\w)")
# "1. Open Settings", "Step 2: …": the model numbering its steps, not a number the quote has to state.
_STEP_NUMBER = re.compile(r"^\W*(?:step\s+\d+\s*[:.)-]|\d+[.)])\s+", re.I)


def _words_of(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFC", text).casefold().translate(_APOSTROPHES))


def _negated(text: str) -> bool:
    return any(w in _NEGATIONS or w.endswith("n't") for w in _words_of(text))


def _limited(text: str) -> bool:
    return any(w in _LIMITS for w in _words_of(text)) or bool(_LIMIT_FR.search(text))


def _numbers(text: str) -> set[str]:
    # 10,000 and 10.000 are one number; 1,5 and 1.5 too.
    return {re.sub(r"[.,](?=\d{3}(?!\d))", "", n).replace(",", ".") for n in _NUMBER.findall(text)}


def _sentence_names(text: str, german: bool) -> list[str]:
    """The names a written sentence capitalises, as named_things reads a question. German capitalises every noun:
    there only a name's odd capitals ("SAML", "OneDrive") or digits mark it."""
    names = []
    for sentence in re.split(r"(?<=[.!?:;])\s+|\n+", text.strip()):
        for position, token in enumerate(_NAME_TOKEN.findall(sentence)):
            word = token.lower()
            if position == 0 or token == "I" or word in _ANY_STOP or word in _CALENDAR:
                continue
            odd = token.isupper() or any(c.isdigit() for c in token) or bool(re.search(r".[A-Z]", token))
            if any(c.isupper() for c in token) and (odd or not german):
                names.append(token)
    return names


def _names_quoted(quote: str) -> set[str]:
    words = {t.lower().removesuffix("'s") for t in _NAME_TOKEN.findall(quote)}
    return words | {w.removesuffix("s") for w in words}


def _acronym_of(name: str, quote: str) -> bool:
    """ "SSO" stands for "single sign-on" in the quote: the initials of consecutive words."""
    initials = "".join(w[0] for w in re.findall(r"[^\W\d_]+", quote.casefold()))
    return name.isupper() and 3 <= len(name) <= 6 and name.lower() in initials


def _contradiction(sentence: str, quote: str) -> str | None:
    # A link is judged by _link_listed; its address is no statement ("/guides/2", "/Formats"), its text is.
    sentence = _LINK.sub(" ", re.sub(r"\[([^\]\n]*)\]\([^)\n]*\)", r"\1", sentence))
    if _negated(sentence) != _negated(quote):
        return "polarity_changed"
    if _limited(quote) and not _limited(sentence):
        return "limit_dropped"
    if not _numbers(_STEP_NUMBER.sub("", sentence)) <= _numbers(quote):
        return "number_not_in_quote"
    quoted = _names_quoted(quote)
    german = language_of(f"{sentence} {quote}") == "de"
    for name in _sentence_names(sentence, german):
        word = name.lower().removesuffix("'s")
        if word not in quoted and word.removesuffix("s") not in quoted and not _acronym_of(name, quote):
            return "name_not_in_quote"
    return None


# A link or address the customer could follow: a URL, a Markdown link's target (even a relative one), a bare host
# with a path or a common top-level domain, an e-mail address.
_MARKDOWN_LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]*)")
_LINK = re.compile(
    r"\b(?:https?://|ftp://|www\.)[^\s<>()\[\]\"'`]+|\bmailto:[^\s<>()\[\]\"'`]+"
    r"|(?<![\w.@/-])(?:[a-z0-9-]+\.)+(?:[a-z]{2,}/[^\s<>()\[\]\"'`]*|(?:com|net|org|io|co|app|dev|ai|info|biz|me|us"
    r"|uk|de|fr|es|eu|example|site|online|xyz|link|page|support|help)\b)"
    r"|(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    re.I,
)


def _links(text: str) -> list[str]:
    links = [m.group(1) for m in _MARKDOWN_LINK.finditer(text)]
    links += [m.group(0).rstrip(".,;:!?") for m in _LINK.finditer(_MARKDOWN_LINK.sub(" ", text))]
    return links


def _host(link: str) -> str:
    address = link.removeprefix("mailto:")
    if "@" in address and "/" not in address:
        return address.rsplit("@", 1)[1].lower()
    if not re.match(r"^[a-z][a-z0-9+.-]*://", address, re.I):
        address = "//" + address if re.match(r"^[\w-]+(?:\.[\w-]+)+", address) else address
    try:
        return (urlsplit(address).hostname or "").removeprefix("www.")
    except ValueError:
        # "https://help.example.com]/sso": no host to check, so on no cited site (the draft is rejected, not a crash).
        return ""


def _link_listed(link: str, quote: str, sites: Iterable[str]) -> bool:
    """A link may be sent when its quote holds it exactly, or it is a cited article's url or on that site."""
    if link and any(link.lower().rstrip("/") == held.lower().rstrip("/") for held in _links(quote)):
        return True
    sites = [site for site in sites if site]
    host = _host(link)
    return any(link.rstrip("/") == site.rstrip("/") for site in sites) or bool(
        host and any(host == _host(site) for site in sites)
    )


_CITED = re.compile(r"\s*\[(?P<article>[^\[\]\s]+) v(?P<version>\d+)\]")
_FROM_LABEL = re.compile(r'^From "(?P<title>.*)" \[(?P<article>[^\[\]\s]+) v(?P<version>\d+)\]:$')
_LINK_LABEL = re.compile(r"^Full article: (?P<url>\S+)$")


def cited_sentences(draft: Draft, passages: Sequence[CleanPassage]) -> list[tuple[str, str]]:
    """Each statement of the draft with the quote that is to support it.

    A written draft (the Bedrock composer's) is "sentence [article vN] sentence [article vN] …", citing in the order
    of draft.citations: each sentence is paired with its own citation's quote, and with nothing when that citation
    is missing or names another article (text after the last citation is cited by nothing). An extractive draft is
    its quotes ("> unit") under labels: 'From "<title>" [article vN]:', a section heading and ":", "Full article:
    <url>". A quote line is paired with the quote it is (so it passes by construction); a label claims nothing when
    it is the title, a heading or the link of a cited passage, and is a statement cited by nothing otherwise."""
    cited = {(c.article_id, c.version) for c in draft.citations}
    sources = [p for p in passages if (p.article_id, p.version) in cited]
    quotes = [c.quote for c in draft.citations]
    pairs: list[tuple[str, str]] = []
    written: list[str] = []
    for line in draft.text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(">"):
            unit = stripped[1:].strip()
            # Its own quote, not a longer one that happens to hold the same words ("Open Settings." is in
            # "Open Settings. You cannot undo this.", whose negation it does not state).
            own = [quote for quote in quotes if normal_form(quote) == normal_form(unit)]
            pairs.append((unit, own[0] if own else max(quotes, key=lambda quote: support(unit, quote))))
        elif label := _FROM_LABEL.match(stripped):
            key = (label["article"], int(label["version"]))
            if not any((p.article_id, p.version) == key and p.title == label["title"] for p in sources):
                pairs.append((stripped, ""))
        elif label := _LINK_LABEL.match(stripped):
            if not any(p.url == label["url"] for p in sources):
                pairs.append((stripped, ""))
        elif stripped.endswith(":") and not _CITED.search(stripped):
            heading = normal_form(stripped[:-1])
            if not any(heading in normal_form(" ".join([p.title, *p.heading_path, p.text])) for p in sources):
                written.append(line)
        else:
            written.append(line)
    text, position = "\n".join(written), 0
    for number, marker in enumerate(_CITED.finditer(text)):
        own = draft.citations[number] if number < len(draft.citations) else None
        key = (marker["article"], int(marker["version"]))
        quote = own.quote if own is not None and (own.article_id, own.version) == key else ""
        pairs.append((text[position : marker.start()].strip(), quote))
        position = marker.end()
    if re.search(r"[^\W_]", text[position:]):
        pairs.append((text[position:].strip(), ""))
    return pairs


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""


def verify(draft: Draft, passages: Sequence[CleanPassage], question: str = "") -> Verdict:
    """Every citation points at a passage we retrieved and quotes it; every statement is backed by its own quote
    and links nowhere else; the text promises no account action; and (given the question) the answer is not about
    what the customer said they do not have or use."""
    if not draft.text.strip() or not draft.citations:
        return Verdict(False, "no_citations")
    if promises_action(draft.text):
        return Verdict(False, "promises_action")
    if instruction_like(draft.text):
        return Verdict(False, "instruction_in_answer")
    by_ref = {}
    for passage in passages:
        by_ref.setdefault((passage.article_id, passage.version), []).append(normal_form(passage.text))
    for citation in draft.citations:
        texts = by_ref.get((citation.article_id, citation.version))
        if texts is None:
            return Verdict(False, f"unknown_citation:{citation.article_id}@{citation.version}")
        quote = normal_form(citation.quote)
        if quote and not any(quote in text for text in texts):
            return Verdict(False, f"quote_not_in_passage:{citation.article_id}@{citation.version}")
    # Whatever its wording or language, a statement its own quote does not back is not the help center's answer.
    cited = {(c.article_id, c.version) for c in draft.citations}
    sources = [p for p in passages if (p.article_id, p.version) in cited]
    sites = [p.url for p in sources if p.url]
    for sentence, quote in cited_sentences(draft, passages):
        problem = unsupported(sentence, quote, sites)
        if problem:
            return Verdict(False, problem)
    if question and answers_about_negated_name(draft, sources, question):
        return Verdict(False, "negated_name")
    return Verdict(True)
