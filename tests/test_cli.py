"""The `recipecheck` command line: lint, formats, selection, config, suppression, bad input."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from recipecheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
BUGGY = ROOT / "fixtures" / "scripts" / "buggy"
CLEAN = ROOT / "fixtures" / "scripts" / "clean"

STEPLR_PER_BATCH = textwrap.dedent("""\
    import torch
    from torch.optim.lr_scheduler import StepLR

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(90):
        for x, y in train_loader:
            opt.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
""")
FINDING_LINE = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): (?P<code>RC\d{3}) \[(error|warning|info)\] .+")


def run(*args, cwd=None):
    runner = CliRunner()
    if cwd is not None:
        with runner.isolated_filesystem(temp_dir=cwd):
            pass
    return runner.invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "train.py"
    p.write_text(STEPLR_PER_BATCH)
    return p


def test_lint_reports_ruff_style_line_and_exit_1(script):
    res = run("lint", "--no-cache", str(script))
    assert res.exit_code == 1
    lines = [l for l in res.output.splitlines() if FINDING_LINE.match(l)]
    assert len(lines) == 1
    m = FINDING_LINE.match(lines[0])
    assert (m["line"], m["col"], m["code"]) == ("12", "9", "RC201")
    assert "StepLR" in lines[0] and "len(train_loader)" in lines[0]


def test_clean_directory_exits_0():
    res = run("lint", str(CLEAN))
    assert res.exit_code == 0, res.output
    assert "All checks passed" in res.output


def test_buggy_directory_exits_1():
    assert run("lint", str(BUGGY)).exit_code == 1


def test_exit_zero(script):
    assert run("lint", "--exit-zero", str(script)).exit_code == 0


def test_json_contract(script):
    res = run("lint", "--format", "json", str(script))
    data = json.loads(res.output)
    assert isinstance(data, list) and len(data) == 1
    assert set(data[0]) == {"code", "name", "severity", "path", "line", "column", "end_line",
                            "end_column", "message", "fix"}
    f = data[0]
    assert (f["code"], f["name"], f["severity"], f["line"], f["column"]) == (
        "RC201", "epoch-scheduler-stepped-per-batch", "error", 12, 9)
    assert f["end_line"] == 12 and f["end_column"] == 9 + len("sched.step()")
    assert f["fix"] is not None and f["fix"]["safety"] == "unsafe"


def test_sarif_validates_against_official_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    res = run("lint", "--format", "sarif", "--select", "ALL", str(BUGGY))
    doc = json.loads(res.output)
    jsonschema.Draft4Validator(schema).validate(doc)
    results = doc["runs"][0]["results"]
    assert results and all(r["ruleId"].startswith("RC") for r in results)
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)


def test_github_annotations(script):
    res = run("lint", "--format", "github", str(script))
    line = res.output.strip()
    assert line.startswith("::error file=")
    assert ",line=12,col=9," in line and "title=RC201" in line


def test_select_ignore_extend_select():
    out = json.loads(run("lint", "--format", "json", "--select", "RC2", str(BUGGY)).output)
    assert out and {f["code"][:3] for f in out} == {"RC2"}
    assert "RC205" in {f["code"] for f in out}  # info rules come in when selected explicitly
    out = json.loads(run("lint", "--format", "json", "--ignore", "RC201", str(BUGGY)).output)
    assert "RC201" not in {f["code"] for f in out}
    default = {f["code"] for f in json.loads(run("lint", "--format", "json", str(BUGGY)).output)}
    assert "RC205" not in default
    out = json.loads(run("lint", "--format", "json", "--extend-select", "RC205", str(BUGGY)).output)
    assert "RC205" in {f["code"] for f in out}


def test_bad_selector_exits_2(script):
    res = CliRunner().invoke(main, ["lint", "--select", "XYZ9", str(script)])
    assert res.exit_code == 2
    assert "XYZ9" in res.output


def test_statistics_and_output_file(script, tmp_path):
    out = tmp_path / "report.json"
    res = run("lint", "--format", "json", "--output-file", str(out), str(script))
    assert res.exit_code == 1 and json.loads(out.read_text())[0]["code"] == "RC201"
    res = run("lint", "--statistics", str(BUGGY))
    assert re.search(r"^\s*\d+\s+RC201\s+epoch-scheduler-stepped-per-batch\s+error", res.output, re.M)


def test_noqa_and_unused_noqa(tmp_path):
    p = tmp_path / "t.py"
    src = STEPLR_PER_BATCH.replace("        sched.step()\n", "        sched.step()  # noqa: RC201\n")
    src += "x = 1  # noqa: RC101\ny = 2  # noqa: E501\nz = 3  # noqa\n"
    p.write_text(src)
    out = json.loads(run("lint", "--format", "json", "--select", "RC1,RC2,RC9", str(p)).output)
    assert [(f["code"], f["line"]) for f in out] == [("RC901", 13)]
    p.write_text(STEPLR_PER_BATCH.replace("        sched.step()\n", "        sched.step()  # noqa\n"))
    assert run("lint", str(p)).exit_code == 0


def test_skip_file(tmp_path):
    p = tmp_path / "t.py"
    p.write_text("# recipecheck: skip-file\n" + STEPLR_PER_BATCH)
    assert run("lint", str(p)).exit_code == 0


def test_bad_inputs_never_crash_and_other_files_are_linted(tmp_path):
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "latin1.py").write_bytes(b"x = 'caf\xe9'\n")
    (tmp_path / "binary.py").write_bytes(b"\x00\x01\x02abc")
    (tmp_path / "syntax.py").write_text("def f(:\n    pass\n")
    (tmp_path / "nested.py").write_text("x = " + "(" * 500 + "1" + ")" * 500 + "\n")
    (tmp_path / "train.py").write_text(STEPLR_PER_BATCH)
    res = CliRunner(mix_stderr=False).invoke(main, ["lint", "--format", "json", "--no-cache", str(tmp_path)]) \
        if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else \
        CliRunner().invoke(main, ["lint", "--format", "json", "--no-cache", str(tmp_path)])
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    by_file = {(Path(f["path"]).name, f["code"]) for f in out}
    assert ("train.py", "RC201") in by_file
    assert ("syntax.py", "RC900") in by_file
    assert ("latin1.py", "RC900") in by_file
    syntax = next(f for f in out if Path(f["path"]).name == "syntax.py")
    assert syntax["line"] == 1
    assert "binary.py: skipped" in res.stderr
    assert "Traceback" not in res.output


def test_large_file_is_skipped_with_notice(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.recipecheck]\nmax-file-size = 100\n")
    p = tmp_path / "big.py"
    p.write_text("x = 1\n" * 100)
    res = run("lint", str(p))
    assert res.exit_code == 0
    assert "larger than max-file-size" in res.output


def test_config_discovery_select_per_file_ignores_exclude(tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""\
        [tool.recipecheck]
        ignore = ["RC201"]
        exclude = ["legacy/*"]
        [tool.recipecheck.per-file-ignores]
        "scripts/*.py" = ["RC1"]
    """))
    (tmp_path / "train.py").write_text(STEPLR_PER_BATCH)
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "old.py").write_text(STEPLR_PER_BATCH)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "s.py").write_text(STEPLR_PER_BATCH.replace("        opt.zero_grad()\n", ""))
    out = json.loads(run("lint", "--format", "json", str(tmp_path)).output)
    assert out == []
    # RC101 is ignored only under scripts/
    (tmp_path / "train2.py").write_text(STEPLR_PER_BATCH.replace("        opt.zero_grad()\n", ""))
    out = json.loads(run("lint", "--format", "json", str(tmp_path)).output)
    assert [(Path(f["path"]).name, f["code"]) for f in out] == [("train2.py", "RC101")]


def test_fail_on_error_ignores_warnings(tmp_path):
    (tmp_path / "recipecheck.toml").write_text('fail-on = "error"\n')
    p = tmp_path / "t.py"
    p.write_text("for x, y in loader:\n    loss = crit(model(x), y)\n    loss.backward()\n"
                 "    total += loss\n")
    res = run("lint", "--format", "json", str(p))
    assert [f["code"] for f in json.loads(res.output)] == ["RC104"]
    assert res.exit_code == 0


@pytest.mark.parametrize("body,needle", [
    ('[tool.recipecheck]\nselct = ["RC1"]\n', "unknown key 'selct' (did you mean 'select'?)"),
    ('[tool.recipecheck]\nignor = ["RC1"]\n', "did you mean 'ignore'?"),
    ('[tool.recipecheck]\nselect = ["RC999"]\n', "'select': 'RC999': no rule has this code"),
    ('[tool.recipecheck]\nignore = [""]\n', "'ignore': empty rule code"),
    ('[tool.recipecheck]\nmax-file-size = true\n', "'max-file-size' must be a whole number"),
    ('[tool.recipecheck]\nmax-file-size = 0\n', "'max-file-size'"),
    ('tool = 5\nname = "recipecheck"\n', "'tool' must be a table"),
    ('[tool]\nrecipecheck = 5\n', "must be a table of settings"),
    ('[tool.recipecheck.per-file-ignores]\n"a/*" = ["RC99"]\n', "per-file-ignores.a/*"),
    ('[tool.recipecheck]\nfail-on = "fatal"\n', "'fail-on'"),
    ('[tool.recipecheck]\nselect = ["BOGUS"]\n', "'select"),
    ('[tool.recipecheck]\nselect = "RC1"\n', "'select'"),
    ('[tool.recipecheck.options.RC999]\nx = 1\n', "RC999"),
    ('[tool.recipecheck\n', "invalid TOML"),
])
def test_bad_config_exits_2_naming_file_and_key(tmp_path, body, needle):
    (tmp_path / "pyproject.toml").write_text(body)
    p = tmp_path / "t.py"
    p.write_text("x = 1\n")
    res = CliRunner().invoke(main, ["lint", str(p)])
    assert res.exit_code == 2
    err = res.output.strip().splitlines()
    assert len(err) == 1 and "pyproject.toml" in err[0] and needle in err[0]


def test_skips_virtualenvs_and_build_dirs(tmp_path):
    for d in (".venv", "build", "__pycache__", ".git", "myenv"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "t.py").write_text(STEPLR_PER_BATCH)
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    assert run("lint", str(tmp_path)).exit_code == 0


def test_jobs_and_cache_give_the_same_findings(tmp_path):
    for i in range(8):
        (tmp_path / f"t{i}.py").write_text(STEPLR_PER_BATCH)
    one = json.loads(run("lint", "--format", "json", "--jobs", "1", "--no-cache", str(tmp_path)).output)
    many = json.loads(run("lint", "--format", "json", "--jobs", "2", str(tmp_path)).output)
    cached = json.loads(run("lint", "--format", "json", "--jobs", "2", str(tmp_path)).output)
    assert one == many == cached and len(one) == 8


def test_cache_is_keyed_on_content(tmp_path, monkeypatch):
    p = tmp_path / "t.py"
    p.write_text(STEPLR_PER_BATCH)
    assert run("lint", str(p)).exit_code == 1
    p.write_text("x = 1\n")
    assert run("lint", str(p)).exit_code == 0


def test_rules_and_explain():
    res = run("rules")
    assert res.exit_code == 0 and "RC201" in res.output and "epoch-scheduler-stepped-per-batch" in res.output
    res = run("explain", "RC201")
    assert res.exit_code == 0
    for heading in ("What it does", "Why is this bad?", "Use instead", "References"):
        assert heading in res.output
    assert CliRunner().invoke(main, ["explain", "RC999"]).exit_code == 2


def test_python_dash_m_and_console_script(script):
    res = subprocess.run([sys.executable, "-m", "recipecheck", "lint", "--no-cache", str(script)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "RC201" in res.stdout
    assert "\x1b[" not in res.stdout  # plain text when piped


def test_lint_does_not_import_torch(script):
    code = ("import sys; from recipecheck.cli import main\n"
            "try:\n    main(['lint', '--no-cache', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'lint imported torch'\n")
    res = subprocess.run([sys.executable, "-c", code, str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
