"""Packaging guards, rule metadata, manuals and agreement with the catalog (docs/catalog.md)."""

import re
import tomllib
from pathlib import Path

import pytest

from recipecheck.finding import Severity
from recipecheck.rule import MANUAL_HEADINGS, all_rules

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "docs" / "catalog.md"


def test_every_mapped_package_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for pkg, folder in cfg["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            parts = [p for p in rel.parts if p]
            found.add(".".join([pkg, *parts]))
    assert found - listed == set(), "sub-packages missing from pyproject's packages list"
    assert listed - found == set(), "packages listed that do not exist"


def test_folders_refuse_top_level_import(tmp_path, monkeypatch):
    import importlib.util
    import sys

    for folder in ("rules", "runtime"):
        spec = importlib.util.spec_from_file_location(folder, ROOT / folder / "__init__.py")
        mod = importlib.util.module_from_spec(spec)
        with pytest.raises(ImportError, match=f"recipecheck.{folder}"):
            spec.loader.exec_module(mod)
        sys.modules.pop(folder, None)


def test_codes_unique_and_in_their_block():
    codes = [r.CODE for r in all_rules()]
    assert len(codes) == len(set(codes))
    for r in all_rules():
        assert re.fullmatch(r"RC\d{3}", r.CODE)
        block = f"rc{r.CODE[2]}xx"
        assert f".rules.{block}." in r.__module__, f"{r.CODE} lives outside {block}"


def _catalog() -> dict[str, tuple[str, str]]:
    out = {}
    for line in CATALOG.read_text().splitlines():
        m = re.match(r"\|\s*(R[CT]\d{3})\s*\|\s*([a-z0-9-]+)\s*\|\s*(error|warning|info)\s*\|", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def test_rules_agree_with_catalog():
    catalog = _catalog()
    for r in all_rules():
        assert r.CODE in catalog, f"{r.CODE} is not in the catalog"
        assert (r.NAME, r.SEVERITY.value) == catalog[r.CODE], r.CODE


def test_runtime_checks_agree_with_catalog():
    from recipecheck.catalog import runtime_checks

    catalog = _catalog()
    checks = runtime_checks()
    assert {c.code for c in checks} == {c for c in catalog if c.startswith("RT")}
    for c in checks:
        assert (c.name, c.severity) == catalog[c.code], c.code
        assert c.summary and c.fix, f"{c.code} has no manual text or remedy"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.CODE)
def test_manual_has_every_heading_in_order(rule):
    doc = rule.__doc__ or ""
    positions = []
    for h in MANUAL_HEADINGS:
        m = re.search(rf"^\s*## {re.escape(h)}\s*$", doc, re.M)
        assert m, f"{rule.CODE} manual lacks '## {h}'"
        positions.append(m.start())
    assert positions == sorted(positions)


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.CODE)
def test_rule_metadata(rule):
    assert isinstance(rule.SEVERITY, Severity)
    assert rule.MESSAGE and rule.NAME == rule.NAME.lower()
    assert rule.FIX in (None, "safe", "unsafe")
    assert rule.enabled_by_default() == (rule.SEVERITY is not Severity.INFO)
