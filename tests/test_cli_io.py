"""`recipecheck lint` input and output: stdin, text formats, summaries, unknown codes, config
errors, unsafe fixes, internal errors, and `recipecheck recipe` over several paths."""

import json
import re

import pytest
from click.testing import CliRunner

from recipecheck.cli import main

from test_cli import STEPLR_PER_BATCH  # one copy of the shared snippet
ADAM_L2 = "import torch\nopt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)\n"


def invoke(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def script(tmp_path):
    p = tmp_path / "train.py"
    p.write_text(STEPLR_PER_BATCH)
    return p


# ------------------------------------------------------------------ messages and text formats


def test_messages_do_not_repeat_the_code(script):
    res = invoke("lint", "--format", "json", str(script))
    (f,) = json.loads(res.output)
    assert f["code"] == "RC201"
    assert not re.search(r"\(RC\d{3}\)\s*$", f["message"]), f["message"]
    assert "len(train_loader) times faster" in f["message"]


def test_rc201_message_without_a_loader_name_reads_well(tmp_path):
    p = tmp_path / "t.py"
    p.write_text(STEPLR_PER_BATCH.replace("for x, y in train_loader:", "for x, y in make_batches():"))
    out = invoke("lint", "--format", "json", str(p)).output
    msg = json.loads(out)[0]["message"]
    assert "len(the loader)" not in msg and "faster than intended" in msg


def test_full_format_shows_source_caret_and_fix_title(script):
    res = invoke("lint", "--output-format", "full", str(script))
    assert res.exit_code == 1
    lines = res.output.splitlines()
    assert lines[0] == f"{script} (1 finding)"  # grouped under a file header
    src = next(i for i, line in enumerate(lines) if line.startswith("12 |"))
    assert lines[src] == "12 |         sched.step()"
    caret = lines[src + 1]
    assert caret.index("^") == lines[src].index("sched") and caret.count("^") == len("sched.step()")
    assert "= fix: move the scheduler step after the batch loop (unsafe: --fix --unsafe-fixes)" in res.output


def test_full_format_groups_findings_by_file(tmp_path):
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(STEPLR_PER_BATCH + ADAM_L2.split("\n", 1)[1])
    out = invoke("lint", "--output-format", "full", str(tmp_path)).output
    headers = [line for line in out.splitlines() if line.endswith("(2 findings)")]
    assert headers == [f"{tmp_path / 'a.py'} (2 findings)", f"{tmp_path / 'b.py'} (2 findings)"]
    a_block = out[out.index(headers[0]):out.index(headers[1])]
    assert "b.py:" not in a_block


def test_concise_is_one_line_per_finding_and_the_default_when_piped(script):
    concise = invoke("lint", "--output-format", "concise", str(script)).output
    assert invoke("lint", str(script)).output == concise
    assert concise.splitlines()[0].startswith(f"{script}:12:9: RC201 [error] ")
    assert len(concise.splitlines()) == 2  # the finding and the summary


# ------------------------------------------------------------------ summaries


def test_empty_directory_says_no_python_files(tmp_path):
    res = invoke("lint", str(tmp_path))
    assert res.exit_code == 0
    assert "No Python files were found" in res.output and "All checks passed" not in res.output
    res = invoke("lint", "--format", "json", str(tmp_path))
    assert res.exit_code == 0 and res.stdout == "[]\n" and "no Python files were found" in res.stderr


def test_internal_error_is_not_all_checks_passed(tmp_path, monkeypatch):
    from recipecheck.rules.rc1xx.rc101_missing_zero_grad import MissingZeroGrad

    def boom(self, ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(MissingZeroGrad, "check", boom)
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    res = CliRunner().invoke(main, ["lint", "--no-cache", "--exit-zero", "-j1",
                                                    str(tmp_path)])
    assert res.exit_code == 2  # an internal error stays exit 2, even with --exit-zero
    assert "All checks passed" not in res.stdout
    assert "No findings in 2 files, but 2 of them were not fully checked" in res.stdout
    assert "internal error in RC101" in res.stderr


def test_statistics_honours_json(script):
    res = invoke("lint", "--statistics", "--format", "json", str(script))
    assert res.exit_code == 1
    assert json.loads(res.output) == [{"code": "RC201", "name": "epoch-scheduler-stepped-per-batch",
                                       "severity": "error", "count": 1, "fixable": 1}]
    assert invoke("lint", "--statistics", "--format", "sarif", str(script)).exit_code == 2


# ------------------------------------------------------------------ unknown codes


@pytest.mark.parametrize("args", [
    ("--select", "RC999"), ("--ignore", "RC999"), ("--extend-select", "RC999"), ("--select", ""),
    ("--ignore", ""), ("--select", "BOGUS"), ("--select", "RC1O1"), ("--ignore", "RT104"),
])
def test_unknown_codes_are_usage_errors(script, args):
    res = CliRunner().invoke(main, ["lint", *args, str(script)])
    assert res.exit_code == 2, res.stdout
    assert res.stderr.startswith("recipecheck: error: ") and len(res.stderr.strip().splitlines()) == 1


def test_known_prefixes_and_all_still_work(script):
    assert invoke("lint", "--select", "RC2", str(script)).exit_code == 1
    assert invoke("lint", "--ignore", "RC2", str(script)).exit_code == 0
    assert invoke("lint", "--select", "ALL", "--ignore", "RC201,RC205,RC206", str(script)).exit_code == 0


def test_non_utf8_pyproject_is_an_error(tmp_path):
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.recipecheck]\nexclude = [\"caf\xe9\"]\n")
    (tmp_path / "t.py").write_text("x = 1\n")
    res = CliRunner().invoke(main, ["lint", str(tmp_path / "t.py")])
    assert res.exit_code == 2 and "not valid UTF-8" in res.stderr and "pyproject.toml" in res.stderr


def test_pyproject_without_our_section_is_ignored(tmp_path):
    (tmp_path / "pyproject.toml").write_text('tool = 5\n')  # not ours: never read
    (tmp_path / "t.py").write_text("x = 1\n")
    assert invoke("lint", str(tmp_path / "t.py")).exit_code == 0


def test_explicit_config_with_scalar_tool_is_an_error_not_a_traceback(tmp_path):
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text("tool = 5\n")
    (tmp_path / "t.py").write_text("x = 1\n")
    res = CliRunner().invoke(main, ["lint", "--config", str(cfg), str(tmp_path / "t.py")])
    assert res.exit_code == 2 and "'tool' must be a table" in res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("body,needle", [
    ("[options.RC602]\nmax-sgd-l = 2.0\n",
     "'options.RC602.max-sgd-l': unknown option (did you mean 'max-sgd-lr'?)"),
    ('[options.RC602]\nmax-sgd-lr = "x"\n', "'options.RC602.max-sgd-lr': must be a valid number"),
    ("[options.RC602]\nmax-sgd-lr = -1\n", "must be greater than 0, got -1"),
])
def test_option_errors_in_plain_words(tmp_path, body, needle):
    (tmp_path / "recipecheck.toml").write_text(body)
    (tmp_path / "t.py").write_text("x = 1\n")
    res = CliRunner().invoke(main, ["lint", str(tmp_path / "t.py")])
    assert res.exit_code == 2
    assert needle in res.stderr, res.stderr
    assert "Value error" not in res.stderr and "Extra inputs" not in res.stderr
    assert "Input should" not in res.stderr


# ------------------------------------------------------------------ fixes


def test_fix_says_how_many_unsafe_fixes_are_hidden(tmp_path):
    p = tmp_path / "t.py"
    p.write_text(ADAM_L2)
    res = CliRunner().invoke(main, ["lint", "--fix", str(p)])
    assert p.read_text() == ADAM_L2  # RC601's fix is unsafe: not applied
    assert "1 unsafe fix was not applied: add --unsafe-fixes" in res.stdout
    res = CliRunner().invoke(main, ["lint", "--diff", str(p)])
    assert res.stdout == "" and "1 unsafe fix not shown: add --unsafe-fixes" in res.stderr
    res = CliRunner().invoke(main, ["lint", "--diff", "--unsafe-fixes", str(p)])
    assert "+opt = torch.optim.AdamW(" in res.stdout
    assert invoke("lint", "--fix", "--unsafe-fixes", str(p)).exit_code == 0
    assert "AdamW" in p.read_text()


# ------------------------------------------------------------------ stdin


def test_stdin_uses_the_given_filename_and_its_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.recipecheck.per-file-ignores]\n"other.py" = ["RC2"]\n')
    res = CliRunner().invoke(
        main, ["lint", "-", "--stdin-filename", str(tmp_path / "train.py")], input=STEPLR_PER_BATCH)
    assert res.exit_code == 1
    assert res.stdout.startswith(f"{tmp_path / 'train.py'}:12:9: RC201")
    res = CliRunner().invoke(
        main, ["lint", "-", "--stdin-filename", str(tmp_path / "other.py")], input=STEPLR_PER_BATCH)
    assert res.exit_code == 0, res.stdout  # per-file ignore of the named path applies


def test_stdin_formats_and_fix(tmp_path):
    res = invoke("lint", "-", "--format", "json", input=STEPLR_PER_BATCH)
    assert [f["path"] for f in json.loads(res.output)] == ["-"]
    res = CliRunner().invoke(main, ["lint", "-", "--fix", "--unsafe-fixes"],
                                             input=ADAM_L2)
    assert res.stdout == ADAM_L2.replace("Adam(", "AdamW(")  # the fixed source on stdout
    assert invoke("lint", "-", input="x = 1\n").exit_code == 0
    assert CliRunner().invoke(main, ["lint", "-", "a.py"]).exit_code == 2


# ------------------------------------------------------------------ recipe


def test_recipe_accepts_several_files_and_directories(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "a.py").write_text(STEPLR_PER_BATCH)
    (d / "b.py").write_text(ADAM_L2)
    single = tmp_path / "c.py"
    single.write_text(STEPLR_PER_BATCH)
    res = invoke("recipe", "--format", "json", str(d), str(single))
    assert res.exit_code == 0
    docs = json.loads(res.output)
    assert isinstance(docs, list) and len(docs) == 3
    text = invoke("recipe", str(d)).output
    assert f"==> {d / 'a.py'} <==" in text and f"==> {d / 'b.py'} <==" in text
    assert isinstance(json.loads(invoke("recipe", "--format", "json", str(single)).output), dict)


def test_exclude_skips_walked_dirs_but_not_a_named_one(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.recipecheck]\nexclude = ["fixtures"]\n')
    (tmp_path / "fixtures" / "buggy").mkdir(parents=True)
    (tmp_path / "fixtures" / "buggy" / "t.py").write_text(STEPLR_PER_BATCH)
    (tmp_path / "ok.py").write_text("x = 1\n")
    res = invoke("lint", str(tmp_path))
    assert res.exit_code == 0 and "All checks passed (1 file)" in res.output
    res = invoke("lint", str(tmp_path / "fixtures" / "buggy"))  # named: linted
    assert res.exit_code == 1 and "RC201" in res.output


# ------------------------------------------------------------------ start-up cost (no timing)


def test_rule_index_matches_the_rules_and_survives_a_corrupt_cache(tmp_path, monkeypatch):
    from recipecheck import rule as rule_mod

    monkeypatch.setenv("RECIPECHECK_CACHE_DIR", str(tmp_path))
    rule_mod.rule_index.cache_clear()
    try:
        first = rule_mod.rule_index()
        assert first == tuple(rule_mod.RuleMeta.of(r) for r in rule_mod.all_rules())
        (cached,) = (tmp_path / "rule-index").glob("*.json")
        cached.write_text("{not json")
        rule_mod.rule_index.cache_clear()
        assert rule_mod.rule_index() == first
    finally:
        rule_mod.rule_index.cache_clear()


def test_cache_hit_lint_and_version_do_not_import_libcst_or_click(tmp_path):
    import os
    import subprocess
    import sys

    p = tmp_path / "t.py"
    p.write_text(STEPLR_PER_BATCH)
    probe = ("import sys, atexit; atexit.register(lambda: print('HEAVY', sorted(m for m in "
             "('libcst', 'pydantic', 'click', 'recipecheck.program.model') if m in sys.modules), "
             "file=sys.stderr)); from recipecheck.entry import main; sys.argv[0] = 'recipecheck'; main()")
    env = {**os.environ, "RECIPECHECK_CACHE_DIR": str(tmp_path / "cache")}

    def heavy(*args):
        res = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                             env=env, timeout=120)
        line = [x for x in res.stderr.splitlines() if x.startswith("HEAVY")][-1]
        return res, line

    res, first = heavy("lint", str(p))
    assert res.returncode == 1 and "'libcst'" in first  # a cache miss parses the file
    assert "'pydantic'" not in first  # rule options are validated only when a config sets them
    res, again = heavy("lint", str(p))
    assert res.returncode == 1 and "RC201" in res.stdout
    assert again == "HEAVY ['click']", again
    res, version = heavy("--version")
    from recipecheck import __version__

    assert res.stdout == f"recipecheck, version {__version__}\n" and version == "HEAVY []"
