"""Issue 11: hostile input never crashes, hangs or blows up the linter (generated in the test).

Each test fails without its fix: deep files segfaulted libcst (rc 139), a worker crash lost the
whole run, helpers calling each other expanded exponentially, valid deep code was dropped as
"nested too deeply", resolve_module/_resolve_moved recursed forever on `x = x.cuda()`.
Time and memory are measured by benchmarks/stress.py, never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest

from recipecheck import engine
from recipecheck.engine import Job, RuleSet, lint_source, run_job, run_jobs
from recipecheck.program.model import _count_items, build_program, expansion_budget
from recipecheck.rule import all_rules

ROOT = Path(__file__).resolve().parent.parent
RULES = [r() for r in all_rules()]
ALL_CODES = tuple(r.CODE for r in all_rules())

_spec = importlib.util.spec_from_file_location("stress", ROOT / "benchmarks" / "stress.py")
stress = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stress)

# a real finding that deep code next to it must not hide (RC509: BatchNorm, batch of 2)
BUGGY = (
    "import torch.nn as nn\nfrom torch.utils.data import DataLoader\n"
    "model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())\n"
    "train_loader = DataLoader(train_ds, batch_size=2, shuffle=True)\n"
    "for epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
    "        loss = crit(model(x), y)\n        loss.backward()\n        opt.step()\n"
)


def _codes(res) -> list[str]:
    return [f.code for f in res.findings]


# --------------------------------------------------------------------------- item 1

@pytest.mark.parametrize("name,n", [
    ("nested-parens", 1500), ("nested-calls", 3000), ("sum-too-long", 8000),
    ("attribute-chain-too-long", 9000), ("nested-lists", 1000), ("indent-too-deep", 120),
    ("ternaries-too-deep", 2000),  # CPython accepts it; libcst would need gigabytes
])
def test_too_deep_for_the_parser_is_one_rc900_with_a_reason(name, n):
    gen = stress.SHAPES[name][0]
    res = lint_source(BUGGY + gen(n), "deep.py", RULES)
    assert res.errors == []
    assert _codes(res) == ["RC900"]
    msg = res.findings[0].message
    assert "not linted" in msg and ("pars" in msg or "nested" in msg), msg


def test_deep_file_in_a_run_exits_1_and_lints_the_other_files(tmp_path):
    (tmp_path / "deep.py").write_text(stress.nested_calls(3000))
    (tmp_path / "ok.py").write_text(BUGGY)
    for jobs in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "recipecheck", "lint", "--no-cache", "-j", jobs,
                               str(tmp_path)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stderr  # findings; 139 was the segfault
        assert "deep.py:1:" in proc.stdout and "RC900" in proc.stdout
        assert "ok.py:4:" in proc.stdout and "RC509" in proc.stdout


def _crash_on_marker(real):
    def lint(source, path, rules, **kw):
        if b"CRASH-THE-PARSER" in (source if isinstance(source, bytes) else source.encode()):
            import faulthandler

            faulthandler.disable()  # the crash is the point: no dump on the test's stderr
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(source, path, rules, **kw)
    return lint


def test_a_worker_that_dies_costs_one_file(tmp_path, monkeypatch):
    # the workers are forked: they inherit the patched lint_source, which dies like libcst did
    monkeypatch.setattr(engine, "lint_source", _crash_on_marker(engine.lint_source))
    paths = []
    for i in range(8):
        p = tmp_path / f"f{i}.py"
        p.write_text("# CRASH-THE-PARSER\n" + BUGGY if i == 3 else BUGGY)
        paths.append(p)
    jobs = [Job(str(p), RuleSet(ALL_CODES), (), 5_000_000) for p in paths]
    results = run_jobs(jobs, n_jobs=2, use_cache=False)
    assert [r.path for r in results] == [str(p) for p in paths]
    crashed = results[3]
    assert _codes(crashed) == ["RC900"] and "crashed" in crashed.findings[0].message
    for i, r in enumerate(results):
        if i != 3:
            assert "RC509" in _codes(r) and r.errors == []


# --------------------------------------------------------------------------- item 3

@pytest.mark.parametrize("n", [9, 14])
def test_mutually_calling_helpers_expand_within_a_linear_budget(n):
    from recipecheck.program.evaluation import analysis

    program = build_program(cst.parse_module(stress.mutual_helpers(n)))
    budget = expansion_budget(program)
    assert budget < 100 * n * n  # linear in the program's size (n helpers of n calls)
    size = sum(_count_items(f.items) for f in program.functions.values())
    # past the budget calls stay opaque: only the items already being copied are finished
    xitems = sum(1 + sum(1 for _ in xl.direct()) for xl in program.all_xloops())
    assert xitems <= budget + size
    ev = analysis(program)
    assert len(ev._all_nodes) <= budget + size
    res = lint_source(stress.mutual_helpers(n), "helpers.py", RULES)
    assert res.errors == []


def test_a_helper_called_from_several_loops_is_still_inlined_in_each():
    src = ("import torch\ndef train_step(model, opt, x, y):\n    opt.zero_grad()\n"
           "    loss = crit(model(x), y)\n    loss.backward()\n    opt.step()\n"
           "for epoch in range(10):\n    for x, y in loader_a:\n        train_step(model, opt, x, y)\n"
           "    for x, y in loader_b:\n        train_step(model, opt, x, y)\n")
    program = build_program(cst.parse_module(src))
    assert len(program.batch_loops) == 2


# --------------------------------------------------------------------------- item 4

@pytest.mark.parametrize("name,n", [
    ("elif-chain", 600), ("sum", 1000), ("joined-strings", 1000), ("ternaries", 1000),
    ("attribute-chain", 1000),
])
def test_valid_deep_code_is_linted_and_its_findings_kept(name, n):
    gen = stress.SHAPES[name][0]
    res = lint_source(BUGGY + gen(n), "deep_ok.py", RULES)
    assert res.errors == []
    assert "RC509" in _codes(res) and "RC900" not in _codes(res)


@pytest.mark.parametrize("name,n", [("elif-chain", 600), ("sum", 900), ("ternaries", 900)])
def test_the_program_walk_is_iterative(name, n):
    # built on the caller's stack with Python's default recursion limit: no RecursionError
    module = engine.run_deep(cst.parse_module, stress.SHAPES[name][0](n))
    assert sys.getrecursionlimit() <= 10_000
    build_program(module)


GAN = ("import torch\nfrom models import *\nfrom torch.utils.data import DataLoader\n"
       "generator = Generator()\ndiscriminator = Discriminator()\n"
       "generator = generator.cuda()\ndiscriminator = discriminator.cuda()\n"
       "loader = DataLoader(ds, batch_size=2, shuffle=True)\n"
       "opt = torch.optim.Adam(generator.parameters(), lr=2e-4)\n"
       "for epoch in range(10):\n    for i, (x, y) in enumerate(loader):\n        opt.zero_grad()\n"
       "        loss = criterion(discriminator(generator(x)), y)\n        loss.backward()\n        opt.step()\n")
MOVED_CE = ("import torch.nn as nn\nfrom models import *\nmodel = get_model()\nmodel = model.cuda()\n"
            "criterion = nn.CrossEntropyLoss()\nfor x, y in loader:\n"
            "    loss = criterion(model(x), y)\n    loss.backward()\n")


@pytest.mark.parametrize("src", [GAN, MOVED_CE, stress.moved_model(50)])
def test_rebinding_through_itself_does_not_recurse_forever(src):
    res = lint_source(src, "gan.py", RULES)
    assert res.errors == []


def test_moved_models_are_still_resolved():
    rc509 = BUGGY.replace("train_loader =", "model = model.cuda()\nmodel = model.to(device)\ntrain_loader =")
    assert "RC509" in _codes(lint_source(rc509, "a.py", RULES))
    rc506 = ("import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))\n"
             "model = model.cuda()\nmodel = model.to(device)\ncriterion = nn.CrossEntropyLoss()\n"
             "for x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n")
    assert "RC506" in _codes(lint_source(rc506, "b.py", RULES))


# --------------------------------------------------------------------------- item 5 (cache)

@pytest.mark.parametrize("entry", [
    '{"notice": 5, "findings": []}',
    '{"notice": null, "findings": "RC101"}',
    '{"notice": null, "findings": [{"code": 1}]}',
    '{"notice": null, "findings": [{"code": "RC509", "name": "x", "severity": "warning", '
    '"line": "4", "column": 1, "end_line": 4, "end_column": 2, "message": "m"}]}',
    '{"notice": null, "findings": [{"code": "RC509", "severity": "nope"}]}',
    "[" * 200_000 + "]" * 200_000,
    '{"findings": [], "notice": null, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "\udcff not json",
    "[]",
])
def test_crafted_cache_entries_are_ignored(tmp_path, entry):
    src = tmp_path / "t.py"
    src.write_text(BUGGY)
    job = Job(str(src), RuleSet(ALL_CODES), (), 5_000_000)
    key = engine._cache_key(src.read_bytes(), job)
    cfile = engine.cache_dir() / engine.__version__ / key[:2] / f"{key}.json"
    cfile.parent.mkdir(parents=True, exist_ok=True)
    cfile.write_text(entry, errors="surrogateescape")
    res = run_job(job)
    assert res.errors == [] and "RC509" in _codes(res)


def test_an_untraversable_cache_is_skipped(tmp_path, monkeypatch):
    src = tmp_path / "t.py"
    src.write_text(BUGGY)
    cache = engine.cache_dir()
    real_is_file = Path.is_file

    def is_file(self):
        if str(self).startswith(str(cache)):
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    monkeypatch.setattr(Path, "mkdir", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    res = run_job(Job(str(src), RuleSet(ALL_CODES), (), 5_000_000))
    assert res.errors == [] and "RC509" in _codes(res)


def test_recipe_of_a_too_deep_file_reports_rc900(tmp_path):
    p = tmp_path / "deep.py"
    p.write_text(stress.long_sum(8000))
    proc = subprocess.run([sys.executable, "-m", "recipecheck", "recipe", "--format", "json", str(p)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # "not parsed"; was 139 (segfault) or a hang
    assert "RC900" in proc.stdout
