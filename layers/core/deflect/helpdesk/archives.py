"""The text files inside an attached archive (logs.zip, app.log.gz, diagnostics.tgz), read in memory, bounded.

Customers zip their logs more often than not. Only what a person could read as text is taken (by member name),
and every step has a ceiling, because the archive comes from a stranger:
- the compressed bytes are capped by the reader that fetched them;
- a gzip stream is inflated to at most `MAX_EXPANDED` bytes, however small it was (a decompression bomb stops there);
- at most `MAX_MEMBERS` members are read and at most `max_text` characters returned in all;
- encrypted members, nested archives and binary content are skipped; nothing is written to disk, so member paths
  (`../../etc/passwd`) mean nothing.
Any damage (a truncated zip, a corrupt stream) gives what was read before it, or None.
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator

from deflect.triage.diagnostics import TEXT_FILE_NAME

MAX_EXPANDED = 8 * 1024 * 1024
MAX_MEMBERS = 20

_SKIPPED_DIRS = ("__MACOSX/",)


def _is_text_member(name: str) -> bool:
    return bool(TEXT_FILE_NAME.search(name)) and not name.startswith(_SKIPPED_DIRS) and "/." not in f"/{name}"


def _as_text(raw: bytes) -> str | None:
    # A member named .log can still be binary (a core dump renamed); text has no NUL bytes.
    if not raw or b"\x00" in raw[:4096]:
        return None
    return raw.decode("utf-8", errors="replace")


def _inflate(body: bytes, limit: int, tar_limit: int) -> bytes:
    """A gzip stream's content: at most `tar_limit` bytes if it holds a tarball, else `limit` (a single file needs no
    more than the text kept of it). A truncated stream gives what it held."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        head = inflater.decompress(body, 512)  # a tar header's magic sits at byte 257
        wanted = (tar_limit if _is_tar(head) else limit) - len(head)
        return head + (inflater.decompress(inflater.unconsumed_tail, wanted) if wanted > 0 else b"")
    except zlib.error:
        return b""


def _zip_members(body: bytes, budget: int) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # truncated (the directory is at the end) or not a zip after all
    with archive:
        for info in archive.infolist()[: MAX_MEMBERS * 5]:
            if info.is_dir() or info.flag_bits & 0x1 or not _is_text_member(info.filename):
                continue
            try:
                with archive.open(info) as member:
                    yield info.filename, member.read(budget)  # inflates only what it returns
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, zlib.error, EOFError):
                continue


def _tar_members(data: bytes, budget: int) -> Iterator[tuple[str, bytes]]:
    # A tarball cut short by the caps ends in an error: what came before it is kept.
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            while (info := archive.next()) is not None:
                if info.isfile() and _is_text_member(info.name) and (member := archive.extractfile(info)):
                    yield info.name, member.read(budget)
    except (tarfile.TarError, OSError, EOFError):
        return


def _is_tar(data: bytes) -> bool:
    return data[257:262] == b"ustar"


def archive_text(name: str, body: bytes, *, max_text: int) -> str | None:
    """The text members of a zip, tar, tar.gz or the text of a single .gz file, each under its name; or None."""
    if body.startswith(b"PK\x03\x04"):
        members: Iterator[tuple[str, bytes]] = _zip_members(body, max_text)
    elif body.startswith(b"\x1f\x8b"):
        inflated = _inflate(body, max_text, MAX_EXPANDED)
        if _is_tar(inflated):
            members = _tar_members(inflated, max_text)
        else:
            inner = re.sub(r"\.gz$", "", name, flags=re.I)
            members = iter([(inner, inflated[:max_text])] if _is_text_member(inner) else [])
    elif _is_tar(body):
        members = _tar_members(body, max_text)
    else:
        return None
    parts: list[str] = []
    left = max_text
    for count, (member_name, raw) in enumerate(members):
        if count >= MAX_MEMBERS or left <= 0:
            break
        text = _as_text(raw[:left])
        if text:
            parts.append(f"--- {member_name} ---\n{text}")
            left -= len(text)
    return "\n".join(parts) or None
