"""Every rule's VALID/INVALID examples are test cases (ids like RC101-invalid-2)."""

import re

import pytest

from recipecheck.engine import lint_source
from recipecheck.rule import all_rules

EXPECT_RE = re.compile(r"#\s*expect:\s*([A-Z0-9, ]+)")
ALL = [r() for r in all_rules()]


def expected_lines(src: str, code: str) -> list[int]:
    out = []
    for i, line in enumerate(src.splitlines(), 1):
        m = EXPECT_RE.search(line)
        if m and code in [c.strip() for c in m.group(1).split(",")]:
            out.append(i)
    return out


def _cases(kind):
    for rule in all_rules():
        for i, src in enumerate(getattr(rule, kind), 1):
            yield pytest.param(rule, src, id=f"{rule.CODE}-{kind.lower()}-{i}")


@pytest.mark.parametrize("rule,src", list(_cases("INVALID")))
def test_invalid_example_fires_on_marked_lines(rule, src):
    expected = expected_lines(src, rule.CODE)
    assert expected, "an INVALID example must mark its lines with # expect"
    found = sorted(f.line for f in lint_source(src, "example.py", ALL).findings if f.code == rule.CODE)
    assert found == expected


@pytest.mark.parametrize("rule,src", list(_cases("VALID")))
def test_valid_example_is_quiet(rule, src):
    found = [f for f in lint_source(src, "example.py", ALL).findings if f.code == rule.CODE]
    assert found == []


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.CODE)
def test_every_rule_has_examples(rule):
    assert len(rule.VALID) >= 1 and len(rule.INVALID) >= 1
