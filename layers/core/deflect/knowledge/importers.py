"""Read articles from files: JSONL, a folder of Markdown files with front matter, a Zendesk Help Center export.

Each reader yields ImportRow (valid article) or Rejection (with the reason), never raises on bad content, so
an import reports every problem at once. Pure parsing: the same code serves the CLI and the S3 bulk import.

An object (or a folder) names each article once: a repeated id is rejected and the first row kept, so the
outcome does not depend on row order and importing the same object again changes nothing. A row's `updated_at`
(the source's own edit time) travels with it, so that ingestion can refuse an older edit processed late.

A row whose source says the article is not published (front matter or JSONL `draft: true`, `published: false`,
`status: draft` or any status but published; Zendesk's `draft`) is an Unpublished rejection: never imported, and
ingestion takes a published article of that id out of answers. A field the importer does not know rejects the
row, naming it: dropping it silently would lose what it says (`visiblity: internal` would publish staff text).
Front matter that site generators write and that says nothing about who may read an article is ignored.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deflect.knowledge.ingestion import ImportRow, Unpublished
from deflect.knowledge.models import ArticleInput, Rejection

_FIELDS = set(ArticleInput.model_fields)
# Keys a row may carry besides the governed fields: the id, the source's edit time, other names for the body.
_ROW_KEYS = {"id", "updated_at", "text", "html"}
# Keys that say whether the source publishes the article. A `status` other than these is not published.
_PUBLICATION_KEYS = ("draft", "published", "status")
_PUBLISHED_STATUSES = {"published", "public", "live"}
# Front matter that static site generators and docs tools write and that says nothing about who may read the
# article, or whether it is published: accepted and ignored. Any other key rejects the row.
IGNORED_KEYS = frozenset(
    {
        "aliases", "author", "authors", "categories", "category", "created_at", "date", "description",
        "excerpt", "image", "keywords", "last_modified", "lastmod", "layout", "permalink", "sidebar_label",
        "sidebar_position", "slug", "summary", "toc", "weight",
    }
)  # fmt: skip
_KNOWN_KEYS = _FIELDS | _ROW_KEYS | set(_PUBLICATION_KEYS) | IGNORED_KEYS
_YES = {"true", "yes", "on", "1"}
_NO = {"false", "no", "off", "0"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)
_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _reason(error: ValidationError) -> str:
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(p) for p in problem.get("loc", ())) or "article"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts)


def source_time(value: Any) -> datetime | None:
    """The source's edit time: ISO 8601 (a date, or a date-time; `Z` allowed) or epoch seconds. No zone: UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        moment = datetime.fromisoformat(str(value).strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _flag(key: str, value: Any) -> bool | None:
    """A yes/no field: a boolean, or true/false (yes/no, 1/0) written as text. None when absent or empty."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | str) and str(value).strip().lower() in _YES | _NO:
        return str(value).strip().lower() in _YES
    raise ValueError(f"{key}: expected true or false, got {value!r}")


def unpublished_reason(raw: dict[str, Any]) -> str | None:
    """Why the row's source does not publish the article ("draft article (draft: true)"); None if it does.
    ValueError when a publication field holds something else than it may."""
    if _flag("draft", raw.get("draft")):
        return "draft article (draft: true)"
    if _flag("published", raw.get("published")) is False:
        return "unpublished article (published: false)"
    status = raw.get("status")
    if status is None or status == "" or status == []:
        return None
    if not isinstance(status, str):
        raise ValueError(f"status: expected text such as published or draft, got {status!r}")
    status = status.strip().lower()
    return None if status in _PUBLISHED_STATUSES else f"{status} article (status: {status})"


def _unknown_fields(raw: dict[str, Any]) -> str | None:
    unknown = sorted(str(k) for k in raw if k not in _KNOWN_KEYS)
    if not unknown:
        return None
    named = []
    for key in unknown:
        near = difflib.get_close_matches(key.lower(), sorted(_KNOWN_KEYS - IGNORED_KEYS), n=1, cutoff=0.75)
        named.append(f"{key!r} (did you mean {near[0]!r}?)" if near else repr(key))
    return (
        f"unknown field{'s' if len(named) > 1 else ''} {', '.join(named)}: not imported, since what "
        f"{'they say' if len(named) > 1 else 'it says'} would be lost; rename or remove "
        f"{'them' if len(named) > 1 else 'it'}"
    )


def article_row(raw: dict[str, Any], source: str, *, default_id: str | None = None) -> ImportRow | Rejection:
    """One article from a mapping: `id`, `title`, `body` (or `text`, or `html`), any governed field, and
    `updated_at`, when the source last edited it. A row its source does not publish is Unpublished; a row with a
    field this importer does not know is rejected."""
    data = {k: v for k, v in raw.items() if k in _FIELDS}
    if "body" not in data:
        if raw.get("html"):
            data.update(body=raw["html"], body_format="html")
        elif raw.get("text"):
            data["body"] = raw["text"]
    article_id = str(raw.get("id") or default_id or "").strip()
    if not article_id:
        return Rejection(source=source, reason="missing id")
    try:
        edited = source_time(raw.get("updated_at"))
    except (ValueError, OverflowError, OSError):
        return Rejection(source=source, reason="updated_at: not an ISO 8601 date-time")
    try:
        unpublished = unpublished_reason(raw)
    except ValueError as error:
        return Rejection(source=source, reason=str(error))
    if unpublished:
        return Unpublished(source=source, reason=unpublished, article_id=article_id, source_updated_at=edited)
    unknown = _unknown_fields(raw)
    if unknown:
        return Rejection(source=source, reason=unknown)
    try:
        article = ArticleInput.model_validate(data)
    except ValidationError as error:
        return Rejection(source=source, reason=_reason(error))
    return ImportRow(article_id=article_id, article=article, source=source, source_updated_at=edited)


def once_per_article(rows: Iterable[ImportRow | Rejection]) -> Iterator[ImportRow | Rejection]:
    """The first row of each article id (published or not); later rows with that id are rejected, never
    imported over it."""
    first: dict[str, str] = {}
    for row in rows:
        if isinstance(row, ImportRow | Unpublished):
            if row.article_id in first:
                yield Rejection(
                    source=row.source,
                    reason=f"article id {row.article_id!r} repeats {first[row.article_id]}: "
                    "only the first row of an article is imported",
                )
                continue
            first[row.article_id] = row.source
        yield row


def read_jsonl_lines(lines: Any, name: str) -> Iterator[ImportRow | Rejection]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        source = f"{name}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            yield Rejection(source=source, reason=f"not JSON: {error.msg}")
            continue
        yield (
            article_row(raw, source)
            if isinstance(raw, dict)
            else Rejection(source=source, reason="not an object")
        )


def _scalar(value: str) -> Any:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if value.startswith("[") and value.endswith("]"):
        return [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    if value.lower() in {"null", "~", ""}:
        return None
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """`key: value` lines (with `[a, b]` or `- item` lists) between `---` fences. No YAML library needed."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta: dict[str, Any] = {}
    current: str | None = None
    for line in match.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = re.match(r"^\s+-\s+(.*)$", line) or re.match(r"^-\s+(.*)$", line)
        if item and current is not None:
            existing = meta.get(current)
            meta[current] = [*(existing if isinstance(existing, list) else []), _scalar(item.group(1))]
            continue
        key, _, value = line.partition(":")
        current = key.strip()
        meta[current] = _scalar(value) if value.strip() else []
    return meta, text[match.end() :]


def markdown_row(text: str, source: str, default_id: str) -> ImportRow | Rejection:
    meta, body = front_matter(text)
    if not meta.get("title"):
        heading = _TITLE.search(body)
        if heading:
            meta["title"] = heading.group(1)
    return article_row({**meta, "body": body.strip()}, source, default_id=default_id)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:62] or "general"


def zendesk_rows(export: dict[str, Any], source: str) -> Iterator[ImportRow | Rejection]:
    """Help Center `GET /api/v2/help_center/articles.json?include=sections,categories` pages, merged or not.

    Product area comes from the category (else the section) name; `user_segment_id` and `user_segment_ids` map to
    segments, or to internal when every sideloaded segment named is staff-only; drafts are Unpublished (rejected, and taken out of
    answers if an earlier export published them); `outdated` marks the article stale.
    """
    sections = {s.get("id"): s for s in export.get("sections") or []}
    categories = {c.get("id"): c for c in export.get("categories") or []}
    segments = {s.get("id"): s for s in export.get("user_segments") or []}
    for position, article in enumerate(export.get("articles") or [], start=1):
        where = f"{source}#articles[{position}]"
        if not isinstance(article, dict) or article.get("id") is None:
            yield Rejection(source=where, reason="article without id")
            continue
        if article.get("draft"):
            try:
                edited = source_time(article.get("updated_at"))
            except (ValueError, OverflowError, OSError):
                yield Rejection(source=where, reason="draft article; updated_at: not an ISO 8601 date-time")
                continue
            yield Unpublished(
                source=where,
                reason="draft article",
                article_id=f"zd-{article['id']}",
                source_updated_at=edited,
            )
            continue
        section = sections.get(article.get("section_id")) or {}
        category = categories.get(section.get("category_id")) or {}
        area = _slug(category.get("name") or section.get("name") or "general")
        data: dict[str, Any] = {
            "id": f"zd-{article['id']}",
            "title": article.get("title") or "",
            "body": article.get("body") or "",
            "body_format": "html",
            "product_area": area,
            "locale": str(article.get("locale") or "en").lower(),
            "source": "official_kb",
            "url": article.get("html_url"),
            "tags": [str(t) for t in article.get("label_names") or []],
            "owner": f"zendesk-user-{article['author_id']}" if article.get("author_id") else "",
            "updated_at": article.get("updated_at"),
        }
        restricted = _zendesk_segments(article)
        if restricted is None:
            yield Rejection(source=where, reason="user_segment_ids: not a list of segment ids")
            continue
        if restricted:
            # Readers are those of ANY listed segment: staff segments add nobody outside the company.
            customer_segments = [s for s in restricted if (segments.get(s) or {}).get("user_type") != "staff"]
            if customer_segments:
                data.update(visibility="segments", segments=[f"zendesk-{s}" for s in customer_segments])
            else:
                data["visibility"] = "internal"
        if article.get("outdated"):
            data["review_by"] = (date.today() - timedelta(days=1)).isoformat()
        yield article_row(data, where)


def _zendesk_segments(article: dict[str, Any]) -> list[Any] | None:
    """Every segment an article is restricted to: `user_segment_id`, and `user_segment_ids`, which Enterprise plans
    use instead (the single id is then null). Empty: everyone may read it. None: a restriction we cannot read."""
    many = article.get("user_segment_ids")
    if many is not None and not (isinstance(many, list) and all(isinstance(s, int | str) for s in many)):
        return None
    single = article.get("user_segment_id")
    found = ([single] if single is not None else []) + list(many or [])
    return list(dict.fromkeys(found))


def read_path(path: Path) -> Iterator[ImportRow | Rejection]:
    """A file (.jsonl, .md, Zendesk .json export) or a folder of them, in a stable order."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    yield from once_per_article(row for file in files for row in read_file(file))


def read_file(file: Path) -> Iterator[ImportRow | Rejection]:
    if file.name.startswith("."):
        return
    yield from read_object(str(file), file.read_bytes())


def read_json_text(text: str, source: str) -> Iterator[ImportRow | Rejection]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        yield Rejection(source=source, reason=f"not JSON: {error.msg}")
        return
    if isinstance(document, dict) and "articles" in document:
        yield from zendesk_rows(document, source)
    elif isinstance(document, dict) and "article" in document:
        yield from zendesk_rows({"articles": [document["article"]]}, source)
    else:
        yield Rejection(source=source, reason="JSON file is not a Zendesk Help Center export")


def read_object(name: str, body: bytes) -> Iterator[ImportRow | Rejection]:
    """An uploaded object (S3 bulk import), by its key's extension."""
    yield from once_per_article(_rows_of(name, body))


def _rows_of(name: str, body: bytes) -> Iterator[ImportRow | Rejection]:
    lowered = name.lower()
    if not lowered.endswith((".jsonl", ".md", ".markdown", ".json")):
        yield Rejection(
            source=name, reason="unsupported file type (use .jsonl, .md or a Zendesk .json export)"
        )
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        # Replacing the bytes would publish U+FFFD in place of the author's letters (a cp1252 "é", a "–").
        yield Rejection(
            source=name,
            reason=f"not UTF-8 text (byte 0x{body[error.start]:02x} at offset {error.start}): "
            "save the file as UTF-8 and upload it again",
        )
        return
    if lowered.endswith(".jsonl"):
        yield from read_jsonl_lines(text.splitlines(), name)
    elif lowered.endswith((".md", ".markdown")):
        yield markdown_row(text, name, Path(name).stem)
    else:
        yield from read_json_text(text, name)
