"""`# noqa` comments, `# recipecheck: skip-file`, and the RC901 unused-suppression finding."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

NOQA_RE = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?", re.I)
SKIP_FILE_RE = re.compile(r"^[ \t]*#[ \t]*recipecheck:[ \t]*skip-file\b", re.M)
CODE_SPLIT_RE = re.compile(r"[\s,]+")


@dataclass
class Noqa:
    line: int
    column: int  # 1-based column of the '#'
    end_column: int
    codes: tuple[str, ...] | None  # None: bare `# noqa` (everything on the line)
    used: set[str]


def has_skip_file(source: str) -> bool:
    return "skip-file" in source and SKIP_FILE_RE.search(source) is not None


def find_noqa(source: str) -> dict[int, Noqa]:
    """Map line -> its noqa comment; only real comments count (not text inside strings)."""
    if "noqa" not in source and "NOQA" not in source:
        return {}
    out: dict[int, Noqa] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return out
    for tok in tokens:
        if tok.type != tokenize.COMMENT:
            continue
        m = NOQA_RE.search(tok.string)
        if not m:
            continue
        codes = None
        if m.group("codes"):
            codes = tuple(c.upper() for c in CODE_SPLIT_RE.split(m.group("codes")) if c)
        line, col = tok.start
        out[line] = Noqa(line=line, column=col + 1, end_column=col + 1 + len(tok.string),
                         codes=codes, used=set())
    return out
