"""The evidence paragraph of each rule's manual, generated from the stored evidence.

Each rule's manual (its class docstring) carries one paragraph at the end of "## Why is this
bad?" that quotes the measured numbers of its experiment (``_evidence_data.py``, written by
``recipecheck validate --write-evidence runtime/experiments``) or says why the rule is not
measured. ``python -m recipecheck.runtime.experiments.manuals`` rewrites those paragraphs
after the evidence is regenerated; ``tests/test_experiments_manuals.py`` keeps them current.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Optional

__all__ = ["evidence_paragraph", "update_rule_manual", "paragraph_in", "main"]

_MARKERS = ("Measured (`recipecheck validate", "Not measured (`recipecheck validate")
_INDENT = "    "
_WIDTH = 96


def evidence_paragraph(code: str) -> Optional[str]:
    """The paragraph the manual of rule ``code`` must contain (one line, unwrapped), or None when
    neither an experiment nor a stated reason exists for it."""
    from ._evidence_data import EVIDENCE
    from .coverage import UNMEASURED

    entry = EVIDENCE.get(code)
    if entry is not None and entry.get("manual"):
        return entry["manual"]
    if code in UNMEASURED:
        return f"Not measured (`recipecheck validate {code}`): {UNMEASURED[code]}."
    return None


def _normalize(text: str) -> str:
    return " ".join(text.split())


def paragraph_in(doc: str, paragraph: str) -> bool:
    """Whether the docstring contains the paragraph (whitespace and wrapping ignored)."""
    return _normalize(paragraph) in _normalize(doc)


def _wrapped(paragraph: str) -> str:
    return textwrap.fill(paragraph, width=_WIDTH, initial_indent=_INDENT, subsequent_indent=_INDENT,
                         break_long_words=False, break_on_hyphens=False)


def update_rule_manual(rule_cls) -> bool:
    """Rewrite the evidence paragraph in the source of ``rule_cls``'s docstring; True if changed.

    An existing paragraph that starts with a marker is replaced; otherwise the paragraph is added
    at the end of the "## Why is this bad?" section. Nothing else in the file is touched.
    """
    paragraph = evidence_paragraph(rule_cls.CODE)
    if paragraph is None:
        return False
    path = Path(inspect.getsourcefile(rule_cls))
    text = path.read_text(encoding="utf-8")
    block = _wrapped(paragraph)
    # an existing generated paragraph: from a marker line to the next blank line
    pattern = re.compile(r"^[ ]*(?:" + "|".join(re.escape(m) for m in _MARKERS) + r").*?(?=\n[ ]*\n)", re.M | re.S)
    if pattern.search(text):
        new = pattern.sub(lambda m: block, text, count=1)
    else:
        m = re.search(r"^[ ]*## Why is this bad\?\s*\n.*?(?=\n[ ]*\n[ ]*## )", text, re.M | re.S)
        if m is None:
            return False
        new = text[:m.end()] + "\n\n" + block + text[m.end():]
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def main(argv: Optional[list[str]] = None) -> int:
    from recipecheck.rule import all_rules

    changed = [r.CODE for r in all_rules() if update_rule_manual(r)]
    print(f"updated the evidence paragraph of {len(changed)} manuals: {' '.join(changed) or '-'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
