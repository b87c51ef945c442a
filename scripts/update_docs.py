"""Regenerate every generated document: docs/rules/*.md (one page per RC rule and RT check, from
the rule manuals and the runtime check classes), docs/rules/index.md, and the README's rule
tables. tests/test_cli_docs.py fails, naming this command, when any of them is stale.

    python scripts/update_docs.py          # write
    python scripts/update_docs.py --check  # exit 1 and list the stale files
"""

import sys
from pathlib import Path

from recipecheck.catalog import generated_docs, update_readme

ROOT = Path(__file__).resolve().parent.parent


def expected() -> dict[Path, str]:
    out = {ROOT / rel: text for rel, text in generated_docs().items()}
    readme = ROOT / "README.md"
    out[readme] = update_readme(readme.read_text(encoding="utf-8"))
    return out


def stale() -> list[Path]:
    """Generated files whose content differs, plus pages of codes that no longer exist."""
    want = expected()
    bad = [p for p, text in want.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
    bad += [p for p in sorted((ROOT / "docs" / "rules").glob("*.md")) if p not in want]
    return bad


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for p in bad:
            print(f"stale: {p.relative_to(ROOT)}")
        return 1 if bad else 0
    want = expected()
    (ROOT / "docs" / "rules").mkdir(parents=True, exist_ok=True)
    for p in sorted((ROOT / "docs" / "rules").glob("*.md")):
        if p not in want:
            p.unlink()
    for p, text in want.items():
        if not p.is_file() or p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")
            print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
