"""Multi-file fixture projects: each file is linted as part of its project (neighbours read to
inform it) and compared with its `# expect:` comments exactly; neighbours are never reported."""

import os
from pathlib import Path

import pytest

from recipecheck.engine import lint_source
from recipecheck.rule import all_rules
from test_fixtures import expectations

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "projects"
RULES = [r() for r in all_rules()]
PROJECTS = sorted(p.name for p in ROOT.iterdir() if p.is_dir())


def _files(project: str) -> list[Path]:
    return sorted((ROOT / project).rglob("*.py"))


def _lint(path: Path):
    return lint_source(path.read_bytes(), str(path), RULES)


@pytest.mark.parametrize("path", [f for p in PROJECTS for f in _files(p)],
                         ids=lambda f: str(f.relative_to(ROOT)))
def test_project_file_findings_match_expectations(path):
    res = _lint(path)
    assert not res.errors, res.errors
    found = sorted((f.line, f.code) for f in res.findings)
    assert found == expectations(path.read_text()), [(f.line, f.code, f.message) for f in res.findings]


@pytest.mark.parametrize("project", PROJECTS)
def test_findings_only_in_the_named_file(project):
    for path in _files(project):
        for f in _lint(path).findings:
            assert f.path == str(path)


def test_enough_projects():
    assert len(PROJECTS) >= 8
    multi = [p for p in PROJECTS if len([f for f in _files(p) if f.stat().st_size]) >= 2]
    assert len(multi) >= 8


# The misses and false alarms that the project link fixes: the same file linted alone, as the
# single-file model did, gets them wrong. Each case names (project, file, code, line or None).
_ALONE = [
    # a reset done by a helper of another module: alone, the loop seems never to reset
    ("zero_grad_helper", "train.py", "RC101"),
    # softmax at the end of a model class of model.py: alone, the loss looks fed with logits
    ("softmax_model", "train.py", "RC506"),
    # a model class with Dropout/BatchNorm in src/: alone, eval mode seems not to matter
    ("src_layout", "scripts/train.py", "RC701"),
    # a model class of model.py with no Dropout/BatchNorm: alone, eval mode seems to matter
    ("zero_grad_helper", "train.py", "RC701"),
    # an optimizer wrapper whose method steps the wrapped optimizer: alone, "never steps"
    ("optim_wrapper", "train.py", "RC103"),
    # an epoch scheduler handed to a Trainer class of another module that steps it per batch
    ("trainer_scheduler", "train.py", "RC201"),
    # a step helper of another module called from the batch loop, nothing resets: alone, a miss
    ("step_helper", "train.py", "RC101"),
    # an optimizer built by configure_optimizers() of model.py with the script's lr / a config's decay
    ("optim_in_model", "train.py", "RC602"),
    ("optim_config_class", "train.py", "RC603"),
    # a zero init constant passed to a model class of another module
    ("init_arg", "train.py", "RC301"),
]


@pytest.mark.parametrize("project,rel,code", _ALONE)
def test_single_file_model_gets_these_wrong(project, rel, code, monkeypatch):
    path = ROOT / project / rel
    # default findings (error/warning): a rule may lower a finding to info where its premise
    # does not hold (RC701 on a model without Dropout/BatchNorm)
    linked = {f.code for f in _lint(path).findings if f.severity.value != "info"}
    monkeypatch.setenv("RECIPECHECK_NO_PROJECT", "1")
    alone = {f.code for f in _lint(path).findings if f.severity.value != "info"}
    assert (code in linked) != (code in alone)


def test_scheduler_handed_to_a_trainer_class_keeps_its_identity_in_one_file(tmp_path):
    """The constructor's arguments flow into `__init__`: `self.lr_scheduler` is the StepLR."""
    trainer = (ROOT / "trainer_scheduler" / "trainer.py").read_text()
    main = (ROOT / "trainer_scheduler" / "train.py").read_text()
    main = main.replace("from trainer import Trainer\n", "").replace("  # expect: RC201", "")
    src = trainer + "\n\n" + main
    f = tmp_path / "one.py"
    f.write_text(src)
    found = [(x.code, x.line) for x in lint_source(src, str(f), RULES).findings]
    step_line = next(i for i, line in enumerate(src.splitlines(), 1) if "self.lr_scheduler.step()" in line)
    assert ("RC201", step_line) in found


def test_notebook_importing_a_local_module(monkeypatch, tmp_path):
    from recipecheck.notebook import lint_notebook

    path = ROOT / "notebook_helper" / "train.ipynb"
    data = path.read_text()
    assert not lint_notebook(data, str(path), RULES).findings
    monkeypatch.setenv("RECIPECHECK_NO_PROJECT", "1")
    assert [f.code for f in lint_notebook(data, str(path), RULES).findings] == ["RC101"]


def test_cached_result_is_stale_when_a_neighbour_changes(tmp_path, monkeypatch):
    """The cache key includes the imported modules' contents (a pre-commit run on one file)."""
    import shutil

    from recipecheck.engine import Job, RuleSet, run_job

    monkeypatch.setenv("RECIPECHECK_CACHE_DIR", str(tmp_path / "cache"))
    proj = tmp_path / "p"
    shutil.copytree(ROOT / "zero_grad_helper", proj)
    job = Job(path=str(proj / "train.py"), ruleset=RuleSet(codes=tuple(r.CODE for r in RULES)),
              ignore=(), max_file_size=5_000_000)
    def default(res):  # error/warning findings (RC701 is at info here: no Dropout/BatchNorm)
        return [f.code for f in res.findings if f.severity.value != "info"]

    assert not default(run_job(job))
    assert not default(run_job(job))  # from the cache
    helpers = proj / "helpers.py"
    helpers.write_text(helpers.read_text().replace("p.grad.zero_()", "pass"))
    helpers.write_text(helpers.read_text().replace("p.grad.detach_()", "pass"))
    assert default(run_job(job)) == ["RC101"]


# ----------------------------------------------------------------------- project resolution


def _tree(root, files: dict[str, str]):
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)


def test_root_and_import_resolution(tmp_path):
    import os

    from recipecheck.program.project import find_root, neighbours, project_of

    _tree(tmp_path, {
        "repo/pyproject.toml": "",
        "repo/src/pkg/__init__.py": "from .core import Model\n",
        "repo/src/pkg/core.py": "from . import util\nfrom ..pkg.util import helper\n",
        "repo/src/pkg/util.py": "import torch\n",
        "repo/scripts/run.py": "import torch, numpy as np\nfrom pkg import Model\nimport sibling\n"
                               "from pkg.missing import nothing\n",
        "repo/scripts/sibling.py": "x = 1\n",
        "loose/a.py": "import b\n",
        "loose/b.py": "",
    })
    run = tmp_path / "repo/scripts/run.py"
    assert find_root(str(run.parent)) == str((tmp_path / "repo").resolve())
    got = {os.path.relpath(p, tmp_path / "repo") for p in neighbours(str(run), run.read_text())}
    # packages, relative imports and src/ layouts resolve; torch and numpy stay symbolic
    assert got == {"src/pkg/__init__.py", "src/pkg/core.py", "src/pkg/util.py", "scripts/sibling.py"}
    # without a marker the file's own directory is the root
    a = tmp_path / "loose/a.py"
    assert project_of(str(a)).root == (tmp_path / "loose").resolve()
    assert [os.path.basename(p) for p in neighbours(str(a), a.read_text())] == ["b.py"]
    # an in-memory source (no file) is never linked
    assert project_of(str(tmp_path / "nope.py")) is None


def test_only_imported_modules_are_read(tmp_path):
    from recipecheck.program.project import neighbours

    _tree(tmp_path, {"setup.py": "", "train.py": "from model import Net\n", "model.py": "",
                     "unrelated.py": "raise SystemExit\n"})
    assert [p.rsplit("/", 1)[-1] for p in neighbours(str(tmp_path / "train.py"), "from model import Net\n")] \
        == ["model.py"]


# ----------------------------------------------------------------------- values


def _values_of(tmp_path, files: dict[str, str], main: str, expr: str, function: str | None = None):
    import libcst as cst

    from recipecheck.program.link import build_linked
    from recipecheck.program.values import value_of

    _tree(tmp_path, {"setup.cfg": "", **files})
    path = tmp_path / main
    text = path.read_text()
    p = build_linked(cst.parse_module(text), str(path), text)
    f = p.functions[function] if function else None
    return value_of(p, f, cst.parse_expression(expr))


def test_values_branches_and_config_override(tmp_path):
    v = _values_of(tmp_path, {"configurator.py": "", "train.py": (
        "lr = 6e-4\naccum = 5 * 8\nddp = False\nif ddp:\n    accum //= 2\n"
        "exec(open('configurator.py').read())\nx = lr * 2 if accum > 8 else 0.0\n")}, "train.py", "accum")
    assert sorted(p.value for p in v.possibilities) == [20, 40]
    assert "configurator.py" in v.overridable
    x = _values_of(tmp_path, {}, "train.py", "x")
    assert {p.value for p in x.possibilities} == {1.2e-3, 0.0}
    assert x.single() is None  # two possibilities: no single value


def test_values_argparse_flags_and_config_objects_across_modules(tmp_path):
    files = {
        "cfg.py": "class CN:\n    pass\n\ndef defaults():\n    C = CN()\n    C.batch_size = 64\n"
                  "    C.lr = 3e-4\n    return C\n",
        "main.py": "import argparse\nfrom cfg import defaults\n"
                   "parser = argparse.ArgumentParser()\n"
                   "parser.add_argument('--use-opt', action='store_true')\n"
                   "parser.add_argument('--epochs', type=int, default=400)\n"
                   "args = parser.parse_args()\nconfig = defaults()\nconfig.lr = 5e-4\n",
    }
    assert _values_of(tmp_path, files, "main.py", "args.use_opt").single() is False
    assert _values_of(tmp_path, files, "main.py", "args.epochs").number() == 400
    # the linted file's assignment overrides the other module's default
    assert _values_of(tmp_path, files, "main.py", "config.lr").number() == 5e-4
    assert _values_of(tmp_path, files, "main.py", "config.batch_size").number() == 64


def test_values_unknown_says_why(tmp_path):
    v = _values_of(tmp_path, {"main.py": "import os\ndef f(n):\n    return n\nk = int(os.environ['K'])\n"},
                   "main.py", "k")
    assert not v.known and "os.environ" in v.unknown
    w = _values_of(tmp_path, {}, "main.py", "n", function="f")
    assert not w.known and "parameter" in w.unknown


def test_cycles_broken_neighbours_and_self_imports_never_break_the_lint(tmp_path):
    _tree(tmp_path, {
        "setup.py": "",
        "a.py": "import torch\nfrom b import helper\nfrom a import thing\n"
                "def thing():\n    return helper()\n"
                "opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)\n"
                "for x in range(3):\n    helper().backward()\n    opt.step()\n    opt.zero_grad()\n",
        "b.py": "from a import thing\nfrom c import nothing\nimport broken\n"
                "def helper():\n    return thing()\n",
        "c.py": "from b import helper as nothing\n",
        "broken.py": "def f(:\n",
    })
    for name in ("a.py", "b.py", "c.py"):
        res = _lint(tmp_path / name)
        assert not res.errors, res.errors
        assert all(f.path == str(tmp_path / name) for f in res.findings)


def test_rc406_single_loader_factory_called_on_two_slices_is_quiet(tmp_path):
    """LLMs-from-scratch's shape: one factory builds one loader from its argument; the training
    and validation loaders come from two calls on two slices of the text (a held-out split)."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "data.py").write_text(
        "from torch.utils.data import DataLoader, Dataset\n\n\nclass Chunks(Dataset):\n"
        "    def __init__(self, txt):\n        self.txt = txt\n    def __len__(self):\n        return len(self.txt)\n"
        "    def __getitem__(self, i):\n        return self.txt[i]\n\n\n"
        "def create_dataloader(txt, batch_size=4, shuffle=True):\n    dataset = Chunks(txt)\n"
        "    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)\n")
    train = ("import torch\nfrom data import create_dataloader\n\ntext = open('t.txt').read()\n"
             "split = int(0.9 * len(text))\ntrain_loader = create_dataloader(text[:split])\n"
             "val_loader = create_dataloader(text[split:], shuffle=False)\n"
             "model = torch.nn.Linear(4, 4)\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4)\n"
             "for epoch in range(3):\n    model.train()\n    for x in train_loader:\n        opt.zero_grad()\n"
             "        model(x).sum().backward()\n        opt.step()\n    model.eval()\n"
             "    with torch.no_grad():\n        val = sum(model(x).sum().item() for x in val_loader)\n")
    (tmp_path / "train.py").write_text(train)
    res = lint_source(train, str(tmp_path / "train.py"), RULES)
    assert "RC406" not in {f.code for f in res.findings}
