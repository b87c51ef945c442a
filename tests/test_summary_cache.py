"""Module summaries (plain data, cached by content hash) and the lazy project link they drive:
a neighbour is parsed with libcst only when the linted file's code reads a name from it."""

import json
import os
from pathlib import Path

import libcst
import pytest
from click.testing import CliRunner

from recipecheck.cli import main
from recipecheck.engine import cache_dir, lint_source
from recipecheck.program import link, project, summary
from recipecheck.rule import all_rules

RULES = [r() for r in all_rules()]

MODEL = """\
import torch.nn as nn
import torch


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.fc(self.drop(x))


def build_optimizer(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-3)


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
"""


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    summary.reset()
    link.reset_caches()
    yield
    summary.set_disk_cache(False)
    summary.reset()
    link.reset_caches()


def _summary_files() -> list[Path]:
    return sorted(cache_dir().rglob("summaries/*/*.json"))


# --------------------------------------------------------------------------- the summary itself


def test_summary_indexes_definitions_imports_and_training_calls():
    s = summary.summary_of("from .util import helper as h\nimport pkg.sub\n" + MODEL)
    assert s["deep"] is None
    assert s["functions"] == ["build_optimizer", "train_step"]
    assert s["classes"]["Net"] == {"bases": ["nn.Module"], "methods": ["__init__", "forward"],
                                   "module": True, "layers": True}
    assert ["util", 1, "helper", "h"] in s["imports"] and ["pkg.sub", 0, None, "pkg"] in s["imports"]
    assert s["training"]["train_step"] == ["backward", "step", "zero_grad"]
    assert s["training"]["build_optimizer"] == ["optimizer"]
    assert "Net.forward" not in s["training"]
    assert "nn.functional.cross_entropy" in s["uses"]["train_step"]
    json.dumps(s)  # plain data


def test_summary_of_invalid_source_is_none_and_too_deep_is_recorded():
    assert summary.summary_of("def f(:\n") is None
    deep = "x = " + "-" * 2500 + "1\n"
    assert summary.too_deep(deep) is not None
    assert summary.summary_of(deep)["functions"] == []


def test_summary_reused_when_content_unchanged_and_recomputed_when_changed():
    summary.set_disk_cache(True)
    first = summary.summary_of(MODEL)
    assert summary.stats == {"computed": 1, "disk_hits": 0}
    assert len(_summary_files()) == 1
    summary._MEMO.clear()  # as a new process would start
    assert summary.summary_of(MODEL) == first
    assert summary.stats == {"computed": 1, "disk_hits": 1}
    changed = summary.summary_of(MODEL + "\n\ndef extra():\n    pass\n")
    assert summary.stats["computed"] == 2
    assert "extra" in changed["functions"] and "extra" not in first["functions"]
    assert len(_summary_files()) == 2


@pytest.mark.parametrize("damage", ["{not json", '{"v": 1}', '[]', '{"v": 999, "deep": null}', ""])
def test_corrupt_summary_cache_entry_is_ignored(damage):
    summary.set_disk_cache(True)
    good = summary.summary_of(MODEL)
    (f,) = _summary_files()
    f.write_text(damage)
    summary._MEMO.clear()
    assert summary.summary_of(MODEL) == good
    assert summary.stats == {"computed": 2, "disk_hits": 0}
    assert json.loads(f.read_text()) == good  # rewritten


def test_no_summary_written_without_disk_cache():
    summary.summary_of(MODEL)
    assert not cache_dir().exists() or _summary_files() == []


def _project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "unused.py").write_text("import torch\n\n\ndef never_called():\n    return 1\n")
    (tmp_path / "train.py").write_text(
        "import torch\nfrom unused import never_called\nfrom model import Net, build_optimizer, train_step\n\n"
        "model = Net()\nopt = build_optimizer(model)\n"
        "for epoch in range(3):\n    for x, y in [(torch.randn(2, 4), torch.tensor([0, 1]))]:\n"
        "        train_step(model, opt, x, y)\n")
    return tmp_path


def test_lint_writes_summaries_only_with_the_cache(tmp_path):
    root = _project(tmp_path)
    r = CliRunner().invoke(main, ["lint", "--no-cache", "--jobs", "1", str(root / "train.py")])
    assert r.exit_code in (0, 1), r.output
    assert _summary_files() == []
    summary.reset()
    link.reset_caches()
    r = CliRunner().invoke(main, ["lint", "--jobs", "1", str(root / "train.py")])
    assert r.exit_code in (0, 1), r.output
    assert len(_summary_files()) == 2  # train.py and model.py; unused.py was not read


# --------------------------------------------------------------------------- the lazy link


@pytest.fixture
def parsed(monkeypatch):
    """The first line of every text that libcst parses."""
    seen: list[str] = []
    real = libcst.parse_module

    def counting(text, *a, **kw):
        t = text.decode() if isinstance(text, bytes) else text
        seen.append(t.splitlines()[0] if t else "")
        return real(text, *a, **kw)

    monkeypatch.setattr(libcst, "parse_module", counting)
    return seen


def test_unused_neighbour_is_not_parsed(tmp_path, parsed):
    root = _project(tmp_path)
    path = root / "train.py"
    res = lint_source(path.read_bytes(), str(path), RULES)
    assert not res.errors
    assert "import torch.nn as nn" in parsed  # model.py: its names are used
    assert "import torch" in parsed  # train.py itself
    assert not any("never_called" in p for p in parsed)
    assert len(parsed) == 2  # train.py and model.py only: unused.py is never parsed


def test_used_neighbour_still_informs_the_lint(tmp_path):
    root = _project(tmp_path)
    path = root / "train.py"
    p = link.build_linked(libcst.parse_module(path.read_text()), str(path), path.read_text())
    assert p.link is not None
    assert [os.path.basename(q) for q in p.link.programs] == ["model.py"]
    assert "Net" in p.classes and "Net" in p.foreign_classes


def test_neighbour_of_a_neighbour_is_parsed_only_when_reached(tmp_path, parsed):
    (tmp_path / "pyproject.toml").write_text("")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    # the package re-exports Trainer; `other` is imported there but nothing reads it
    (pkg / "__init__.py").write_text("# pkg\nfrom .trainer import Trainer\nfrom .other import Other\n")
    (pkg / "trainer.py").write_text("# trainer\nfrom pkg import helpers\n\n\nclass Trainer:\n"
                                    "    def fit(self):\n        helpers.step_all(self.opt)\n")
    (pkg / "helpers.py").write_text("# helpers\ndef step_all(opt):\n    opt.step()\n")
    (pkg / "other.py").write_text("# other\nclass Other:\n    pass\n")
    (tmp_path / "train.py").write_text("# train\nfrom pkg import Trainer\n\nTrainer().fit()\n")
    path = tmp_path / "train.py"
    lint_source(path.read_bytes(), str(path), RULES)
    assert sorted(parsed) == ["# helpers", "# pkg", "# train", "# trainer"]
    deps = project.module_deps(project.project_of(str(path)), str(path), path.read_text())
    assert [os.path.relpath(d, tmp_path) for d in deps] == ["pkg/__init__.py", "pkg/trainer.py"]


def test_dotted_module_use_follows_submodules(tmp_path):
    (tmp_path / "setup.py").write_text("")
    for d in ("a", "a/b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "__init__.py").write_text("")
    (tmp_path / "a" / "b" / "c.py").write_text("def f():\n    pass\n")
    (tmp_path / "a" / "b" / "d.py").write_text("def g():\n    pass\n")
    text = "import a.b\n\na.b.c.f()\n"
    (tmp_path / "main.py").write_text(text)
    deps = project.module_deps(project.project_of(str(tmp_path / "main.py")), str(tmp_path / "main.py"), text)
    assert [os.path.relpath(d, tmp_path) for d in deps] == ["a/__init__.py", "a/b/__init__.py", "a/b/c.py"]


def test_import_without_use_gives_the_single_file_model(tmp_path):
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "helpers.py").write_text("def f():\n    pass\n")
    text = "from helpers import f  # noqa: F401\nimport helpers as h  # noqa: F401\n\nx = 1\n"
    (tmp_path / "main.py").write_text(text)
    p = link.build_linked(libcst.parse_module(text), str(tmp_path / "main.py"), text)
    assert p.link is None


def test_plain_import_for_its_side_effects_is_read(tmp_path):
    """`import models` never used by name registers model classes when imported (timm's
    registry, as DeiT's main.py does): it is read."""
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "models.py").write_text("from registry import register\n\n\n@register\nclass Big:\n    pass\n")
    (tmp_path / "registry.py").write_text("def register(c):\n    return c\n")
    text = "import models  # noqa: F401\nfrom factory import create_model\n\nm = create_model('big')\n"
    (tmp_path / "main.py").write_text(text)
    deps = project.module_deps(project.project_of(str(tmp_path / "main.py")), str(tmp_path / "main.py"), text)
    assert [os.path.basename(d) for d in deps] == ["models.py"]
    p = link.build_linked(libcst.parse_module(text), str(tmp_path / "main.py"), text)
    assert sorted(os.path.basename(q) for q in p.link.programs) == ["models.py", "registry.py"]


# --------------------------------------------------------------------------- layers across modules


def test_same_named_helpers_of_two_modules_are_not_confused(tmp_path):
    """A model class of model.py calls model.py's `block()`; the linted file has its own
    `block()`: the forward walk runs each module's own function (inlined functions are told
    apart by identity, not by name)."""
    from recipecheck.program.layers import layer_analysis

    (tmp_path / "setup.py").write_text("")
    (tmp_path / "model.py").write_text(
        "import torch.nn as nn\nimport torch.nn.functional as F\n\n\ndef block(x):\n"
        "    return F.dropout(x, 0.1)\n\n\nclass Encoder(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(4, 8)\n\n    def forward(self, x):\n"
        "        return block(self.fc(x))\n")
    text = ("import torch.nn as nn\nimport torch.nn.functional as F\nfrom model import Encoder\n\n\n"
            "def block(x):\n    return F.relu(x)\n\n\nclass Net(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.enc = Encoder()\n        self.head = nn.Linear(8, 2)\n\n"
            "    def forward(self, x):\n        x = block(self.enc(x))\n        return self.head(x)\n\n\n"
            "model = Net()\n")
    (tmp_path / "train.py").write_text(text)
    p = link.build_linked(libcst.parse_module(text), str(tmp_path / "train.py"), text)
    units = {u.name: [o.kind for o in u.output.ops] for u in layer_analysis(p).units}
    assert units["Encoder"] == ["linear", "dropout"]
    assert units["Net"] == ["linear", "dropout", "act", "linear"]


# --------------------------------------------------------------------------- positions


def test_statement_level_positions_equal_whole_module_metadata():
    """A reported node whose text occurs several times is placed with libcst's metadata for its
    top-level statement only, shifted by the statement's line from the summary: the same
    position as the whole module's metadata gives (decorators, `a; b` lines, comments)."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    from recipecheck.engine import _Positions
    from recipecheck.program.nodes import walk

    root = Path(__file__).resolve().parent.parent / "fixtures"
    extra = ("# header\n\nimport torch; x = 1\n\n\n@decorator(\n    1)\nclass A:  # c\n"
             "    @staticmethod\n    def f(loader):\n        return [loader for loader in loader]\n\n"
             "async def g(loader):\n    if loader:\n        return loader\n")
    sources = [p.read_text() for p in sorted(root.rglob("*.py"))[::6]] + [extra]
    checked = 0
    for src in sources:
        module = libcst.parse_module(src)
        meta = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        pos = _Positions(module, src)
        for node in walk(module):
            if isinstance(node, (libcst.Name, libcst.Call)):
                r = meta[node]
                assert pos._in_statement(node) == (r.start.line, r.start.column + 1,
                                                   r.end.line, r.end.column + 1)
                checked += 1
    assert checked > 500


# --------------------------------------------------------------------------- parallel dispatch


def test_import_order_puts_modules_before_their_importers(tmp_path):
    from recipecheck.engine import Job, RuleSet
    from recipecheck.lint import _import_order

    (tmp_path / "setup.py").write_text("")
    files = {
        "a_train.py": "from c_model import Net\nfrom b_engine import run\n",
        "b_engine.py": "from d_util import log\n",
        "c_model.py": "import torch\n",
        "d_util.py": "",
        "e_alone.py": "x = 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    jobs = [Job(path=str(tmp_path / n), ruleset=RuleSet(codes=()), ignore=(), max_file_size=10**6)
            for n in files]
    order = [os.path.basename(jobs[i].path) for i in _import_order(jobs)]
    assert order == ["c_model.py", "d_util.py", "b_engine.py", "a_train.py", "e_alone.py"]
    assert sorted(_import_order(jobs)) == list(range(len(jobs)))


def test_parallel_project_lint_reports_in_the_same_order_as_serial(tmp_path):
    root = _project(tmp_path)
    bad = MODEL.replace("    opt.zero_grad()\n", "")
    for i in range(4):
        (root / f"mod{i}.py").write_text(bad)
        (root / f"use{i}.py").write_text(f"from mod{i} import train_step\n\n\ndef go(m, o, x, y):\n"
                                         "    for _ in range(2):\n        train_step(m, o, x, y)\n")
    out = []
    for jobs in ("1", "2"):
        r = CliRunner().invoke(main, ["lint", "--no-cache", "--jobs", jobs, "--format", "json", str(root)])
        assert r.exit_code == 1, r.output
        out.append(json.loads(r.output))
    assert out[0] == out[1] and out[0]
