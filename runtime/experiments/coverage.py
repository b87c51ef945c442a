"""Which rule of the catalog is backed by which experiment, and why the others are not measured.

``recipecheck validate --format json`` lists every catalog code with its experiment or the
reason it has none. :func:`catalog_codes` is the one place that knows where the catalog lives.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

__all__ = ["UNMEASURED", "catalog_codes", "catalog_file", "coverage"]

# Rules whose claim is not a training effect a reference-trainer run can measure.
UNMEASURED: dict[str, str] = {
    "RC705": "protocol advice (train with a held-out split at all): there is no buggy/fixed pair of training "
             "runs to compare; what a missing validation split costs is what RC406 measures (the training "
             "metric's optimism over accuracy on new data)",
    "RC900": "a linter self-diagnostic (the file does not parse): it makes no claim about training",
    "RC901": "about suppression comments (a noqa that suppresses nothing): it makes no claim about training",
}

_ROOT = Path(__file__).resolve().parents[2]  # the checkout: runtime/experiments/ -> repository root
# where the catalog is looked for, first found wins; the lead repoints this when it moves
CATALOG_CANDIDATES = (_ROOT / "docs" / "catalog.md", _ROOT.parent / "shared" / "RULES.md")


def catalog_file() -> Optional[Path]:
    """The rule catalog (docs/catalog.md) of this checkout, or None when installed without it."""
    return next((p for p in CATALOG_CANDIDATES if p.is_file()), None)


def catalog_codes() -> list[str]:
    """Every RC code of the catalog: the codes of the catalog file when it is there, the installed
    rules' codes, and the codes the experiments and :data:`UNMEASURED` know (sorted, unique)."""
    codes: set[str] = set(UNMEASURED)
    path = catalog_file()
    if path is not None:
        codes |= set(re.findall(r"^\|\s*(RC\d{3})\s*\|", path.read_text(encoding="utf-8"), re.M))
    try:
        from recipecheck.rule import all_rules

        codes |= {r.CODE for r in all_rules()}
    except Exception:  # pragma: no cover - the linter core is always installed with the runtime
        pass
    from .base import catalog

    codes |= {e.rule for e in catalog() if e.rule.startswith("RC")}
    return sorted(codes)


def coverage() -> list[dict[str, str]]:
    """One entry per catalog code: ``{"rule", "experiment"}`` or ``{"rule", "reason"}``."""
    from .base import catalog

    by_rule = {e.rule: e for e in catalog()}
    out = []
    for code in catalog_codes():
        if code in by_rule:
            out.append({"rule": code, "experiment": by_rule[code].name})
        else:
            out.append({"rule": code, "reason": UNMEASURED.get(code, "no experiment yet")})
    return out
