"""An OpenSearch stand-in that keeps documents and answers the adapter's write-side requests the way OpenSearch
does: term and terms filters, `sort`, `search_after` and `size` on search; index and delete actions in bulk. Every search
body is recorded, so tests can also assert the exact requests."""

from __future__ import annotations

import itertools
from typing import Any


def _matches(doc: dict[str, Any], clause: dict[str, Any]) -> bool:
    """A `term` filter (one value) or a `terms` filter (any of a list)."""
    if "term" in clause:
        ((field, value),) = clause["term"].items()
        return doc.get(field) == value
    ((field, values),) = clause["terms"].items()
    return doc.get(field) in values


class Indices:
    def exists(self, index: str) -> bool:
        return True

    def refresh(self, index: str) -> None:
        pass


class DocumentStore:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.indices = Indices()
        self.searches: list[dict[str, Any]] = []
        self._generated = itertools.count(1)

    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.searches.append(body)
        clauses = body["query"]["bool"]["filter"]
        found = [(doc_id, doc) for doc_id, doc in self.docs.items() if all(_matches(doc, c) for c in clauses)]
        fields = [next(iter(key)) for key in body.get("sort", [])]

        def key(item: tuple[str, dict[str, Any]]) -> list[Any]:
            return [item[1][field] for field in fields]

        found.sort(key=key)
        if "search_after" in body:
            found = [item for item in found if key(item) > body["search_after"]]
        hits = [
            {"_id": doc_id, "_source": {f: doc.get(f) for f in body["_source"]}, "sort": key((doc_id, doc))}
            for doc_id, doc in found[: body.get("size", 10)]
        ]
        return {"hits": {"hits": hits}}

    def bulk(self, body: list[dict[str, Any]]) -> dict[str, Any]:
        lines = iter(body)
        for action in lines:
            if "index" in action:
                doc_id = action["index"].get("_id") or f"generated-{next(self._generated)}"
                self.docs[doc_id] = next(lines)
            else:
                self.docs.pop(action["delete"]["_id"], None)
        return {"errors": False, "items": []}

    def versions(self, article_id: str) -> dict[int, int]:
        """Indexed chunks of the article by version."""
        counts: dict[int, int] = {}
        for doc in self.docs.values():
            if doc["article_id"] == article_id:
                counts[doc["article_version"]] = counts.get(doc["article_version"], 0) + 1
        return counts
