"""Integrations as the README documents them: the pre-commit hook (through `pre-commit
try-repo`), the composite GitHub Action (its steps run as a runner would), and the project
linting itself clean."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUGGY = ("import torch\nfrom torch.optim.lr_scheduler import StepLR\nsched = StepLR(opt, 30)\n"
         "for epoch in range(90):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
         "        loss = crit(model(x), y)\n        loss.backward()\n        opt.step()\n"
         "        sched.step()\n")
RECIPECHECK = shutil.which("recipecheck", path=str(Path(sys.executable).parent))


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.slow
def test_pre_commit_hook_definition_works_with_try_repo(tmp_path):
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or \
        shutil.which("pre-commit")
    if pre_commit is None:
        pytest.skip("pre-commit is not installed (pip install -e '.[dev]')")
    repo = tmp_path / "user-repo"
    repo.mkdir()
    (repo / "train.py").write_text(BUGGY)
    (repo / "clean.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-home")}
    res = subprocess.run([pre_commit, "try-repo", str(ROOT), "recipecheck", "--files", "train.py"],
                         cwd=repo, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 1, res.stdout + res.stderr
    assert re.search(r"train\.py:10:9: RC201 \[error\]", res.stdout), res.stdout
    res = subprocess.run([pre_commit, "try-repo", str(ROOT), "recipecheck", "--files", "clean.py"],
                         cwd=repo, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr


def _action_steps():
    yaml = pytest.importorskip("yaml")
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    return action


def _run_steps(action, inputs, workdir, bin_dir):
    """Run each step's shell command the way the runner does: `${{ }}` expressions in `env`
    and `if` evaluated, then `bash -e` with that environment."""
    ctx = {**{k: v.get("default", "") for k, v in action["inputs"].items()}, **inputs}

    def expr(text):
        text = re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: ctx[m.group(1)], str(text))
        return text.replace("${{ github.action_path }}", str(ROOT))

    results = []
    for step in action["runs"]["steps"]:
        cond = step.get("if")
        if cond is not None:
            m = re.fullmatch(r"inputs\.([\w-]+) != ''", cond.strip())
            assert m, f"unsupported condition in action.yml: {cond}"
            if ctx[m.group(1)] == "":
                results.append((step["name"], None))
                continue
        assert step["shell"] == "bash"
        env = {**os.environ, **{k: expr(v) for k, v in step.get("env", {}).items()},
               "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        res = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=workdir, env=env,
                             capture_output=True, text=True, timeout=300)
        results.append((step["name"], res))
    return results


def test_github_action_steps(tmp_path):
    action = _action_steps()
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "src" / "train.py").write_text(BUGGY)
    (work / "clean.py").write_text("x = 1\n")
    # The install step runs pip; here `python` records what it would install (no network in
    # tests) and `recipecheck` is this environment's.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pip-args"
    (bin_dir / "python").write_text(f"#!/bin/sh\necho \"$@\" > {log}\n")
    (bin_dir / "python").chmod(0o755)
    assert RECIPECHECK, "the recipecheck console script is not installed"
    (bin_dir / "recipecheck").symlink_to(RECIPECHECK)

    results = dict(_run_steps(action, {"paths": "src clean.py", "sarif-file": "out.sarif"}, work, bin_dir))
    install = results["Install recipecheck"]
    assert install.returncode == 0 and log.read_text().split()[-1] == str(ROOT)
    lint = results["Lint (annotations)"]
    assert lint.returncode == 1  # findings fail the job
    assert lint.stdout.startswith("::error file=src/train.py,line=10,col=9,"), lint.stdout
    assert results["SARIF report"].returncode == 0
    sarif = json.loads((work / "out.sarif").read_text())
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["RC201"]

    results = dict(_run_steps(action, {"paths": "clean.py", "version": "recipecheck==0.1.0"},
                              work, bin_dir))
    assert results["SARIF report"] is None  # no sarif-file: the step is skipped
    assert results["Lint (annotations)"].returncode == 0
    assert log.read_text().split()[-1] == "recipecheck==0.1.0"
    results = dict(_run_steps(action, {"paths": "src", "args": "--ignore RC201"}, work, bin_dir))
    assert results["Lint (annotations)"].returncode == 0


def test_readme_workflow_snippet_uses_the_action_inputs():
    action = _action_steps()
    readme = (ROOT / "README.md").read_text()
    snippet = readme[readme.index("### In CI (GitHub Actions)"):]
    snippet = snippet[snippet.index("```yaml"):]
    snippet = snippet[7:snippet.index("```", 7)]
    import yaml

    workflow = yaml.safe_load(snippet)
    steps = workflow["jobs"]["lint"]["steps"]
    ours = [s for s in steps if s.get("uses", "").startswith("recipecheck/recipecheck@")]
    assert len(ours) == 1 and set(ours[0]["with"]) <= set(action["inputs"])


def test_pre_commit_snippet_matches_the_hook_definition():
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("### pre-commit"):]
    block = block[block.index("```yaml") + 7:]
    config = yaml.safe_load(block[:block.index("```")])
    (repo,) = config["repos"]
    assert repo["rev"] == "main"  # no release tag exists yet; the README says so
    assert [h["id"] for h in repo["hooks"]] == [h["id"] for h in hooks]


def test_project_lints_itself_clean():
    res = subprocess.run([RECIPECHECK, "lint", "."], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "All checks passed" in res.stdout
