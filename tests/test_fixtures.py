"""Every fixture script is linted with every rule and compared with its `# expect:` comments exactly."""

import re
from pathlib import Path

import pytest

from recipecheck.engine import lint_source
from recipecheck.rule import all_rules

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "scripts"
EXPECT_RE = re.compile(r"#\s*expect:\s*((?:RC\d{3}\s*,?\s*)+)")
RULES = [r() for r in all_rules()]


def expectations(src: str) -> list[tuple[int, str]]:
    out = []
    for i, line in enumerate(src.splitlines(), 1):
        m = EXPECT_RE.search(line)
        if m:
            out += [(i, c.strip()) for c in m.group(1).split(",") if c.strip()]
    return sorted(out)


def _scripts(kind):
    return sorted((ROOT / kind).glob("**/*.py"))


@pytest.mark.parametrize("path", _scripts("buggy"), ids=lambda p: p.name)
def test_buggy_fixture_findings_match_expectations(path):
    src = path.read_text()
    expected = expectations(src)
    assert expected, f"{path.name} has no # expect: comment"
    found = sorted((f.line, f.code) for f in lint_source(src, str(path), RULES).findings)
    assert found == expected


@pytest.mark.parametrize("path", _scripts("clean"), ids=lambda p: p.name)
def test_clean_fixture_has_no_findings(path):
    """Clean scripts: no error or warning at all; advice (info) only where marked `# expect:`."""
    src = path.read_text()
    expected = expectations(src)
    info = {r.CODE for r in all_rules() if r.SEVERITY.value == "info"}
    assert all(code in info for _, code in expected), "a clean fixture may only expect info codes"
    findings = lint_source(src, str(path), RULES).findings
    assert sorted((f.line, f.code) for f in findings) == expected, [
        (f.line, f.code, f.message) for f in findings]


def test_enough_fixtures():
    assert len(_scripts("clean")) >= 10
    codes = {c for p in _scripts("buggy") for _, c in expectations(p.read_text())}
    for rule in all_rules():
        if rule.CODE not in ("RC900", "RC901"):
            assert rule.CODE in codes, f"no buggy fixture for {rule.CODE}"
