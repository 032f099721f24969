"""Review check: application code never shortens retention, bypasses governance, deletes object versions,
or scans a table. moto cannot prove the first two (it is lenient), so this check does."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = [ROOT / "layers" / "core" / "deflect", ROOT / "functions"]
FORBIDDEN = {
    r"BypassGovernanceRetention": "governance bypass",
    r"put_object_retention|PutObjectRetention": "retention change",
    r"put_object_lock_configuration|PutObjectLockConfiguration": "lock configuration change",
    r"put_bucket_versioning|PutBucketVersioning": "versioning change",
    r"delete_object\(|delete_objects\(|DeleteObject": "object deletion",
    r"\.scan\(|\"Scan\"|'Scan'|get_paginator\(\s*[\"']scan[\"']": "table Scan",
}


def violations() -> list[str]:
    found = []
    for base in APPLICATION:
        for path in sorted(base.rglob("*.py")):
            text = path.read_text()
            for pattern, what in FORBIDDEN.items():
                for match in re.finditer(pattern, text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path.relative_to(ROOT)}:{line}: {what} ({match.group(0)})")
    return found


def main() -> int:
    found = violations()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
