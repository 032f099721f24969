"""Log archives customers attach: their text files are read for diagnostics, within bounds, whatever the archive."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

from deflect.helpdesk.archives import MAX_EXPANDED, archive_text

LOG = "2026-11-27 10:02:11 Syncbeam desktop v4.12.3 (macOS 14.5)\nERROR SB-4040 source object not found\n"
CAP = 256 * 1024


def _zip(members: dict[str, bytes], **kw) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, **kw) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_the_log_files_in_a_zip_are_read_and_the_rest_is_left():
    body = _zip(
        {
            "logs/": b"",
            "logs/desktop.log": LOG.encode(),
            "logs/screen.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
            "__MACOSX/logs/._desktop.log": b"\x00\x05\x16\x07 resource fork",
            "logs/core.log": b"\x7fELF\x00\x00 a renamed binary",
            "logs/inner.zip": _zip({"more.log": b"v9.9.9"}),
        }
    )
    text = archive_text("logs.zip", body, max_text=CAP)
    assert text == f"--- logs/desktop.log ---\n{LOG}"


def test_a_gzipped_log_and_a_tarball_of_logs_are_read():
    assert archive_text("app.log.gz", gzip.compress(LOG.encode()), max_text=CAP) == f"--- app.log ---\n{LOG}"
    tarball = _tar({"diag/app.log": LOG.encode(), "diag/env.txt": b"OS: Windows 11\n"})
    assert archive_text("diag.tgz", tarball, max_text=CAP) == (
        f"--- diag/app.log ---\n{LOG}\n--- diag/env.txt ---\nOS: Windows 11\n"
    )
    assert (
        archive_text("diag.tar", _tar({"a.log": LOG.encode()}, mode="w"), max_text=CAP)
        == f"--- a.log ---\n{LOG}"
    )


def test_a_decompression_bomb_inflates_no_further_than_the_caps():
    # 40 MB of zeros compress to ~40 KB: the member is read only up to the text cap, the stream to MAX_EXPANDED.
    zeros = b"v1.2.3 " + b"0" * 40_000_000
    zipped = _zip({"huge.log": zeros})
    assert len(zipped) < 100_000
    text = archive_text("bomb.zip", zipped, max_text=1024)
    assert text is not None and len(text) < 1100 and "v1.2.3" in text
    gzipped = gzip.compress(zeros, compresslevel=9)
    text = archive_text("bomb.log.gz", gzipped, max_text=1024)
    assert text is not None and len(text) < 1100
    tarball = _tar({"huge.log": b"0" * (3 * MAX_EXPANDED), "after.log": LOG.encode()})
    # The member past MAX_EXPANDED is never reached: what came before it is kept.
    text = archive_text("bomb.tgz", tarball, max_text=1024)
    assert text is not None and text.startswith("--- huge.log ---") and "SB-4040" not in text


def test_many_members_are_read_up_to_the_text_cap_in_all():
    body = _zip({f"part-{i:03}.log": f"line {i}\n".encode() * 2000 for i in range(100)})
    text = archive_text("many.zip", body, max_text=50_000)
    assert text is not None and len(text) <= 50_000 + 20 * 30  # the cap, plus one heading per member read
    assert text.count("--- part-") <= 20


def test_a_damaged_or_encrypted_archive_is_no_text_not_an_error():
    body = _zip({"desktop.log": LOG.encode()})
    assert archive_text("logs.zip", body[: len(body) // 2], max_text=CAP) is None  # truncated: no directory
    assert archive_text("logs.zip", b"PK\x03\x04 not really a zip", max_text=CAP) is None
    assert archive_text("app.log.gz", b"\x1f\x8b\x08\x00 broken", max_text=CAP) is None
    assert (
        archive_text("notes.zip", LOG.encode(), max_text=CAP) is None
    )  # a text file misnamed: not an archive
    encrypted = bytearray(_zip({"desktop.log": LOG.encode()}))
    # Set the "encrypted" flag in both the local header and the central directory entry.
    encrypted[6] |= 0x1
    central = encrypted.rfind(b"PK\x01\x02")
    encrypted[central + 8] |= 0x1
    assert archive_text("secret.zip", bytes(encrypted), max_text=CAP) is None


def test_a_truncated_gzip_still_gives_the_lines_it_holds():
    body = gzip.compress((LOG * 5000).encode())
    text = archive_text("app.log.gz", body[: len(body) // 2], max_text=CAP)
    assert text is not None and text.startswith(f"--- app.log ---\n{LOG}")
