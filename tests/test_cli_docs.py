"""Rule reference in the CLI and the generated docs: RT codes in `rules`/`explain` without torch,
`explain --format markdown`, docs/rules/ kept current, runtime commands without the extra."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from recipecheck.catalog import DOCS_COMMAND, generated_docs, runtime_checks
from recipecheck.cli import main
from recipecheck.rule import all_rules

ROOT = Path(__file__).resolve().parent.parent

# Run the CLI in a child where `import torch` fails, as on a lint-only install.
NO_TORCH = ("import sys; sys.modules['torch'] = None; "
            "from recipecheck.cli import main; sys.argv[0] = 'recipecheck'; main()")


def no_torch(*args):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True,
                          timeout=120)


def test_docs_are_current():
    stale = []
    for rel, text in generated_docs().items():
        p = ROOT / rel
        if not p.is_file() or p.read_text(encoding="utf-8") != text:
            stale.append(rel)
    expected = set(generated_docs())
    stale += [str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "rules").glob("*.md")
              if str(p.relative_to(ROOT)) not in expected]
    assert not stale, f"generated docs are stale ({', '.join(sorted(stale)[:5])}...): run {DOCS_COMMAND}"


def test_every_code_has_a_page_linked_from_the_index():
    docs = generated_docs()
    index = docs["docs/rules/index.md"]
    codes = [r.CODE for r in all_rules()] + [c.code for c in runtime_checks()]
    assert len(codes) == len(set(codes)) and any(c.startswith("RT") for c in codes)
    for code in codes:
        assert f"docs/rules/{code}.md" in docs
        assert f"]({code}.md)" in index


def test_update_docs_check_mode_agrees():
    res = subprocess.run([sys.executable, "scripts/update_docs.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout


def test_explain_markdown_is_the_docs_page():
    for code in ("RC201", "RT104", "RT114"):
        res = CliRunner().invoke(main, ["explain", "--format", "markdown", code])
        assert res.exit_code == 0
        assert res.output == (ROOT / "docs" / "rules" / f"{code}.md").read_text()
    assert CliRunner().invoke(main, ["explain", "--format", "markdown", "RT999"]).exit_code == 2


def test_explain_and_rules_cover_rt_codes_without_torch():
    res = no_torch("explain", "RT104")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("RT104 (gradients-not-reset) [error]")
    assert "RC101" in res.stdout and "zero_grad" in res.stdout
    res = no_torch("explain", "RT111")
    assert res.returncode == 0 and "model.eval()" in res.stdout
    res = no_torch("rules", "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = {r["code"]: r for r in json.loads(res.stdout)}
    assert rows["RT104"]["command"] == "run" and rows["RT114"]["command"] == "run --sanity"
    assert rows["RC201"]["command"] == "lint"
    assert no_torch("explain", "RT999").returncode == 2


def test_runtime_commands_without_torch_show_help_and_exit_2():
    for cmd in ("run", "validate"):
        res = no_torch(cmd, "--help")
        assert res.returncode == 0, res.stderr
        assert f"Usage: recipecheck {cmd}" in res.stdout
        assert "pip install 'recipecheck[runtime]'" in res.stdout
        assert len(res.stdout.split("Usage:")[1].strip().splitlines()) > 2  # not an empty usage
    assert "--sanity" in no_torch("run", "--help").stdout  # the real options, read without torch
    res = no_torch("run", "train.py")
    assert res.returncode == 2
    assert "needs the runtime extra" in res.stderr and "recipecheck[runtime]" in res.stderr


@pytest.mark.parametrize("code", ["RC201", "RC601"])
def test_rc_manual_fix_safety_matches_the_metadata(code):
    (rule,) = [r for r in all_rules() if r.CODE == code]
    assert rule.FIX == "unsafe"
    assert "Unsafe" in (rule.__doc__ or "").split("## Fix safety", 1)[1] or \
        "unsafe" in (rule.__doc__ or "").split("## Fix safety", 1)[1]
