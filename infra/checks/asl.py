"""Validates every state machine of template.yaml with the npm asl-validator after substituting placeholders,
and fails when an ASL `${X}` has no DefinitionSubstitutions entry."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.local import template as tpl

VALIDATOR = tpl.ROOT / "node_modules" / ".bin" / "asl-validator"


def placeholders_without_substitution() -> list[str]:
    missing = []
    for name, props in tpl.state_machines().items():
        text = Path(tpl.ROOT, props["DefinitionUri"]).read_text()
        for placeholder in sorted(set(re.findall(r"\$\{([^}]+)\}", text))):
            if placeholder not in props.get("DefinitionSubstitutions", {}):
                missing.append(f"{name}: ${{{placeholder}}}")
    return missing


def substituted(text: str) -> str:
    def fake(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.endswith("Arn"):
            return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        if name.endswith("Url"):
            return f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}"
        return name

    return re.sub(r"\$\{([^}]+)\}", fake, text)


def main() -> int:
    missing = placeholders_without_substitution()
    for line in missing:
        print(f"missing DefinitionSubstitutions entry: {line}")
    failed = bool(missing)
    for name, props in tpl.state_machines().items():
        with tempfile.NamedTemporaryFile("w", suffix=".asl.json", delete=False) as handle:
            handle.write(substituted(Path(tpl.ROOT, props["DefinitionUri"]).read_text()))
        result = subprocess.run(  # noqa: S603 (our own validator on our own file)
            [str(VALIDATOR), "--json-path", handle.name], capture_output=True, text=True, check=False
        )
        print(f"{name}: {(result.stdout or result.stderr).strip()}")
        failed |= result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
