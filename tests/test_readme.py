"""The README stays true: its rule tables are generated from the rules, its commands are real,
and it never points outside the repository."""

import re
from pathlib import Path

from recipecheck.catalog import DOCS_COMMAND, update_readme

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_rule_tables_are_current():
    for marker in ("rules-table", "runtime-table"):
        assert f"<!-- {marker}-start -->" in README, f"README lacks the {marker} markers"
    assert update_readme(README) == README, f"README rule tables are stale: run {DOCS_COMMAND}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"```bash\n\s*(python3 -m venv [^\n]*&& pytest)\n", README)
    assert m, "README lacks the test command"
    assert m.group(1) in ci


def test_readme_gives_the_cpu_index_and_every_extra():
    assert "--index-url https://download.pytorch.org/whl/cpu" in README
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in extras:
        assert f"`{extra}`" in README, f"the {extra} extra is not documented in the README"


def test_no_reference_outside_the_repository():
    # a clone has no ../shared: the catalog the tests read is docs/catalog.md
    here = Path(__file__).resolve()
    outside = re.compile(r"\.\./shared|parents?\[?\d?\]?\s*/\s*[\"']shared[\"']|\.parent\s*/\s*[\"']shared[\"']")
    for path in [ROOT / "README.md", *ROOT.glob("tests/*.py"), *ROOT.glob("docs/**/*.md")]:
        if path.resolve() != here:
            assert not outside.search(path.read_text()), path
    for link in re.findall(r"\]\(((?!https?://)[^)#]+)", README):
        assert (ROOT / link).exists(), f"README links to a missing file: {link}"
