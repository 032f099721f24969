"""The customer acknowledgement sent when a ticket is escalated: a person will follow up, and by when.

It promises a follow-up time only — never an outcome (no "your refund is on its way").
"""

from __future__ import annotations

from datetime import UTC, datetime

TEMPLATES: dict[str, str] = {
    "en": (
        "Thank you for your patience. A member of our support team will review your request personally "
        "and follow up with you by {when}."
    ),
    "de": (
        "Vielen Dank für Ihre Geduld. Ein Mitglied unseres Support-Teams prüft Ihr Anliegen persönlich "
        "und meldet sich bis {when} bei Ihnen."
    ),
    "fr": (
        "Merci de votre patience. Un membre de notre équipe d'assistance va examiner votre demande "
        "personnellement et reviendra vers vous d'ici le {when}."
    ),
    "es": (
        "Gracias por su paciencia. Un miembro de nuestro equipo de soporte revisará su solicitud "
        "personalmente y se pondrá en contacto con usted antes del {when}."
    ),
}


def language_of(*candidates: str | None) -> str:
    """First supported language among the candidates ("de-DE" counts as "de"); English otherwise."""
    for candidate in candidates:
        code = (candidate or "").replace("_", "-").split("-")[0].lower()
        if code in TEMPLATES:
            return code
    return "en"


def acknowledgement_text(language: str, follow_up_by: datetime) -> str:
    # An unambiguous UTC timestamp reads the same in every language; helpdesks localise display elsewhere.
    when = follow_up_by.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return TEMPLATES[language_of(language)].format(when=when)
