"""`lint` never raises and never records an internal error, whatever the input."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recipecheck.engine import lint_source
from recipecheck.rule import all_rules

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "scripts"
SOURCES = [p.read_text() for p in sorted(ROOT.glob("*/*.py"))]
RULES = [r() for r in all_rules()]


def _check(src) -> None:
    res = lint_source(src, "fuzz.py", RULES)
    assert res.errors == [], res.errors
    for f in res.findings:
        assert f.line >= 1 and f.column >= 1


@st.composite
def mutated(draw):
    """A fixture source with lines deleted, duplicated, swapped, re-indented or tokens cut."""
    lines = draw(st.sampled_from(SOURCES)).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "cut", "join"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            lines[i] = "    " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][4:] if lines[i].startswith("    ") else lines[i]
        elif op == "cut":
            k = draw(st.integers(0, max(len(lines[i]) - 1, 0)))
            lines[i] = lines[i][:k] + "\n"
        elif op == "join" and i + 1 < len(lines):
            lines[i] = lines[i].rstrip("\n") + " " + lines.pop(i + 1)
    return "".join(lines)


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutated_fixtures_never_crash(src):
    _check(src)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data):
    _check(data)


def test_generated_programs_never_crash():
    hypothesmith = pytest.importorskip("hypothesmith")

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(hypothesmith.from_node())
    def inner(src):
        _check(src)

    inner()
