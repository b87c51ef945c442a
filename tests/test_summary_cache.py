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


@pytest.fixture
def parsed_texts(monkeypatch):
    """Every text that libcst parses, whole."""
    seen: list[str] = []
    real = libcst.parse_module

    def counting(text, *a, **kw):
        seen.append(text.decode() if isinstance(text, bytes) else text)
        return real(text, *a, **kw)

    monkeypatch.setattr(libcst, "parse_module", counting)
    return seen


UTILS = """\
import torch

SCALE = make_scale()


def make_scale():
    return 2


def step_all(opt):
    _really_step(opt)


def _really_step(opt):
    opt.step()


def plot_curves(history):
    import matplotlib.pyplot as plt
    plt.plot(history)


class Logger:
    def log(self, x):
        print(x)


if __name__ == "__main__":
    plot_curves([1, 2, 3])
"""


def test_summary_records_statement_spans_and_the_main_block():
    s = summary.summary_of(UTILS)
    owners = [o for _, _, o in s["stmts"]]
    assert owners == ["<module>", "<module>", "make_scale", "step_all", "_really_step", "plot_curves",
                      "Logger", "<main>"]
    assert "plot_curves" in s["uses"]["<main>"] and "plot_curves" not in s["uses"]["<module>"]
    deco = summary.summary_of("import f\n\n\n@f.wrap\n@f.other(1)\ndef g():\n    pass\n")
    assert deco["stmts"][-1] == [4, 7, "g"]  # decorators belong to the definition


def test_view_keeps_what_the_named_definitions_use_and_module_level_code():
    s = summary.summary_of(UTILS)
    kept = summary.view_owners(s, frozenset({"step_all"}))
    # module-level code runs on import (and calls make_scale); step_all calls _really_step
    assert kept == {"<module>", "make_scale", "step_all", "_really_step"}
    assert summary.view_owners(s, None) == {"<module>", "make_scale", "step_all", "_really_step",
                                            "plot_curves", "Logger"}  # never the main block


def test_neighbour_is_read_only_as_far_as_the_linted_file_uses_it(tmp_path, parsed_texts):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "utils.py").write_text(UTILS)
    (tmp_path / "train.py").write_text(
        "import torch\nfrom utils import step_all\n\nmodel = torch.nn.Linear(2, 2)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for epoch in range(3):\n    for x in [torch.randn(4, 2)]:\n        opt.zero_grad()\n"
        "        model(x).sum().backward()\n        step_all(opt)\n")
    path = tmp_path / "train.py"
    res = lint_source(path.read_bytes(), str(path), RULES)
    # the optimizer is stepped through two helpers of utils.py: no "never steps" (RC103)
    assert "RC103" not in {f.code for f in res.findings}
    utils_parses = [t for t in parsed_texts if t != (tmp_path / "train.py").read_text()]
    # utils.py: its kept statements, each parsed alone, and nothing else
    assert sorted(t.split("\n", 1)[0] for t in utils_parses) == [
        "SCALE = make_scale()", "def _really_step(opt):", "def make_scale():", "def step_all(opt):",
        "import torch"]
    assert not any("plot_curves" in t or "Logger" in t or "__main__" in t for t in utils_parses)


def _views(path, text, name):
    """The view of `name` assembled from parses of its statements alone, and from the whole
    module's parse (both must agree)."""
    s = summary.summary_of(text)
    kept = summary.view_owners(s, frozenset({name}))
    link.reset_caches()
    alone = link._view_module(path, text, s, kept)
    link.remember_parse(path, text, libcst.parse_module(text))
    whole = link._view_module(path, text, s, kept)
    link.reset_caches()
    return alone, whole


def test_view_keeps_whole_statements_once_from_either_parse(tmp_path):
    text = ("import a; import b\nx = 1\n\n\n# about f\n@d\ndef f():\n    return 1\n\n\n"
            "def g():\n    pass\n")
    alone, whole = _views(str(tmp_path / "m.py"), text, "f")
    assert alone[0].code == whole[0].code == "import a; import b\nx = 1\n@d\ndef f():\n    return 1\n"
    assert alone[1] == whole[1] == [1, 2, 6]  # each statement's first line in the file
    # line endings as CPython counts them: CRLF and a lone CR end a line, a form feed does not
    odd = text.replace("\n", "\r\n", 3).replace("x = 1", "x = 1\x0c").replace("def g():\n", "def g():\r")
    alone, whole = _views(str(tmp_path / "m.py"), odd, "f")
    assert alone[0].code.replace("\r\n", "\n") == "import a; import b\nx = 1\x0c\n@d\ndef f():\n    return 1\n"
    assert alone[1] == [1, 2, 6]


def test_neighbour_view_does_not_depend_on_what_was_linted_before(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "utils.py").write_text(UTILS)
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "a.py").write_text("from utils import step_all\nfrom model import Net, train_step\n\n"
                                   "def go(m, o, x, y):\n    for _ in range(2):\n        train_step(m, o, x, y)\n"
                                   "        step_all(o)\n")
    (tmp_path / "b.py").write_text("import utils\nfrom model import build_optimizer, Net\n\n"
                                   "def go(x):\n    m = Net()\n    o = build_optimizer(m)\n"
                                   "    for _ in range(2):\n        m(x).sum().backward()\n        utils.step_all(o)\n"
                                   "    utils.Logger().log(1)\n")
    out = {}
    for order in (("a.py", "b.py"), ("b.py", "a.py")):
        link.reset_caches()
        for name in order:
            p = tmp_path / name
            res = lint_source(p.read_bytes(), str(p), RULES)
            out.setdefault(name, []).append(sorted((f.line, f.code, f.message) for f in res.findings))
    assert out["a.py"][0] == out["a.py"][1]
    assert out["b.py"][0] == out["b.py"][1]
    assert any(code == "RC101" for _, code, _ in out["b.py"][0])  # b never resets the gradients


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


def _jobs(tmp_path, files):
    from recipecheck.engine import Job, RuleSet

    (tmp_path / "setup.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return [Job(path=str(tmp_path / n), ruleset=RuleSet(codes=()), ignore=(), max_file_size=10**6)
            for n in files]


def test_worker_groups_keep_importers_with_their_modules_and_dependencies_first(tmp_path):
    from recipecheck.lint import _worker_groups

    body = "def f(x):\n    return x\n" * 40
    files = {
        "a_train.py": "from c_model import Net\nfrom b_engine import run\n" + body,
        "b_engine.py": "from d_util import log\n" + body,
        "c_model.py": "import torch\n" + body,
        "d_util.py": body,
        "p_train.py": "from q_model import Net\nfrom r_engine import run\n" + body,
        "r_engine.py": "from s_util import log\n" + body,
        "q_model.py": "import torch\n" + body,
        "s_util.py": body,
    }
    jobs = _jobs(tmp_path, files)
    groups = _worker_groups(jobs, 2)
    assert sorted(i for g in groups for i in g) == list(range(len(jobs)))  # each file once
    named = [[os.path.basename(jobs[i].path) for i in g] for g in groups]
    # the two import families are linted in different workers, each module before its importers
    family = next(g for g in named if "a_train.py" in g)
    assert sorted(family) == ["a_train.py", "b_engine.py", "c_model.py", "d_util.py"]
    assert family.index("d_util.py") < family.index("b_engine.py") < family.index("a_train.py")
    assert family.index("c_model.py") < family.index("a_train.py")
    other = next(g for g in named if "p_train.py" in g)
    assert sorted(other) == ["p_train.py", "q_model.py", "r_engine.py", "s_util.py"]


def test_worker_groups_balance_files_without_project_imports(tmp_path):
    from recipecheck.lint import _worker_groups

    files = {f"m{i}.py": "x = 1\n" + "#" * 10 + "\n" for i in range(6)}  # all as long as use.py
    assert _worker_groups(_jobs(tmp_path, files), 2) is None  # no link: any split, chunks go to free workers
    files["use.py"] = "from m0 import x\n"
    groups = _worker_groups(_jobs(tmp_path, files), 2)
    assert sorted(len(g) for g in groups) == [3, 4]


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


def test_every_view_of_every_fixture_is_the_same_from_either_parse():
    """Each single definition's view of each fixture script holds it, and is the same code
    whether assembled from the module's whole parse or from its statements parsed alone (so a
    neighbour's view never depends on what the process parsed before)."""
    root = Path(__file__).resolve().parent.parent / "fixtures"
    checked = 0
    for f in sorted(root.rglob("*.py")):
        text = f.read_text(encoding="utf-8", errors="surrogateescape")
        s = summary.summary_of(text)
        if s is None or s["deep"]:
            continue
        for name in [*s["functions"], *s["classes"]][:6]:
            if summary.view_lines(s, summary.view_owners(s, frozenset({name}))) is None:
                continue
            alone, whole = _views(str(f), text, name)
            assert alone is not None and whole is not None, (f, name)
            assert alone[0].code == whole[0].code and alone[1] == whole[1], (f, name)
            assert name in {getattr(st, "name", None) and st.name.value for st in alone[0].body}
            checked += 1
    assert checked > 200


def test_recipe_places_an_optimizer_of_a_view_on_its_line_in_the_file(tmp_path):
    from recipecheck.recipe import build_recipe

    (tmp_path / "pyproject.toml").write_text("")
    utils = ("import torch\n\n\ndef plot(history):\n" + "    print(history)\n" * 30 +
             "\n\ndef make_optimizer(model):\n    return torch.optim.AdamW(model.parameters(), lr=3e-4)\n")
    (tmp_path / "utils.py").write_text(utils)
    train = ("import torch\nfrom utils import make_optimizer\n\nmodel = torch.nn.Linear(2, 2)\n"
             "opt = make_optimizer(model)\nfor epoch in range(2):\n    for x in [torch.randn(2, 2)]:\n"
             "        opt.zero_grad()\n        model(x).sum().backward()\n        opt.step()\n")
    (tmp_path / "train.py").write_text(train)
    r = build_recipe(train, str(tmp_path / "train.py"))
    (opt,) = r.optimizers
    assert opt.module == "utils.py" and opt.lr == 3e-4
    assert opt.line == utils.splitlines().index("    return torch.optim.AdamW(model.parameters(), lr=3e-4)") + 1
