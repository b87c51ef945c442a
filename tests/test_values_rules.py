"""Rules read numbers through the one value evaluator (recipecheck.program.values): they decide
on the set of possibilities (the rule's severity only when every possibility is bad, info when
some are, nothing for unknown) and see values and optimizers of other project modules."""

from pathlib import Path

import libcst as cst
import pytest

from recipecheck.engine import lint_source
from recipecheck.program import values as V
from recipecheck.program.hparams import number
from recipecheck.program.model import build_program
from recipecheck.rule import all_rules

RULES = [r() for r in all_rules()]
PROJECTS = Path(__file__).resolve().parent.parent / "fixtures" / "projects"


def _findings(src: str, code: str, path: str = "example.py"):
    return [f for f in lint_source(src, path, RULES).findings if f.code == code]


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def _lint_file(path: Path, code: str):
    return [f for f in lint_source(path.read_bytes(), str(path), RULES).findings if f.code == code]


# ----------------------------------------------------------------------- the decision


def _value(possible: list, unknown: str | None = None) -> V.Value:
    return V.Value([V.Possibility(x, "literal", c) for x, c in possible], unknown)


def test_judge_all_some_none():
    big = lambda v: v > 1  # noqa: E731
    assert V.judge(_value([(5.0, None)]), big).verdict == V.ALL
    assert V.judge(_value([(5.0, "a"), (2.0, "not a")]), big).verdict == V.ALL
    some = V.judge(_value([(5.0, "args.big"), (1e-3, "not args.big")]), big)
    assert some.verdict == V.SOME and some.first == 5.0 and "args.big" in some.when()
    # a part the code does not state: never taken for good or bad, so only SOME
    assert V.judge(_value([(5.0, None)], unknown="`x` is computed at run time"), big).verdict == V.SOME
    assert V.judge(_value([], unknown="`args.lr` is not set"), big).verdict == V.NONE
    assert V.judge(_value([(0.5, None), ("sgd", None)]), big).verdict == V.NONE
    assert not V.judge(_value([(True, None)]), lambda v: v > 0)  # a flag is not a number


def test_consistent_with_drops_the_other_branch():
    v = _value([(0.1, "args.sgd"), (1e-3, "not args.sgd")])
    assert [p.value for p in V.consistent_with(v, ["not args.sgd"]).possibilities] == [1e-3]
    assert [p.value for p in V.consistent_with(v, ["args.sgd"]).possibilities] == [0.1]
    assert len(V.consistent_with(v, ["other"]).possibilities) == 2


def test_hparams_number_is_the_evaluator():
    src = ("import torch\ndef make(model, lr=0.5):\n    return torch.optim.SGD(model.parameters(), lr=lr)\n"
           "opt = make(net, lr=2.0)\nbase = 1e-3\nif fast:\n    base *= 10\n")
    p = build_program(cst.parse_module(src))
    make = p.functions["make"]
    # a parameter is bound to the argument of its call (the old helper said None)
    assert number(p, make, cst.parse_expression("lr")) == 2.0
    # two possibilities: no single number
    assert number(p, None, cst.parse_expression("base")) is None
    assert {x.value for x in V.value_of(p, None, cst.parse_expression("base")).possibilities} == {1e-3, 1e-2}
    # an imported module's attribute is not a project value
    assert number(p, None, cst.parse_expression("math.pi")) is None


# ----------------------------------------------------------------------- RC602 on the set


def test_lr_bad_in_one_branch_is_info_and_names_the_condition():
    src = ("import torch\nlr = 10.0 if args.big else 1e-3\n"
           "opt = torch.optim.Adam(model.parameters(), lr=lr)\n")
    (f,) = _findings(src, "RC602")
    assert f.severity.value == "info" and "args.big" in f.message


def test_lr_bad_in_every_branch_is_a_warning():
    src = ("import torch\nif args.big:\n    lr = 10.0\nelse:\n    lr = 0.5\n"
           "opt = torch.optim.Adam(model.parameters(), lr=lr)\n")
    (f,) = _findings(src, "RC602")
    assert f.severity.value == "warning"


def test_lr_of_the_other_branch_is_not_this_optimizers():
    src = ("import torch\nif args.sgd:\n    lr = 0.1\n    opt = torch.optim.SGD(model.parameters(), lr=lr)\n"
           "else:\n    lr = 1e-3\n    opt = torch.optim.Adam(model.parameters(), lr=lr)\n")
    assert _findings(src, "RC602") == []


def test_unknown_lr_is_never_reported():
    src = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=float(os.environ['LR']))\n"
    assert _findings(src, "RC602") == []


def test_weight_decay_decisions_follow_the_same_policy():
    src = ("import torch\nwd = 0.1 if args.strong else 0.0\n"
           "opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=wd)\n")
    for code in ("RC601", "RC603"):
        (f,) = _findings(src, code)
        assert f.severity.value == "info" and "args.strong" in f.message, code
    both = src.replace("0.0", "0.05")
    for code in ("RC601", "RC603"):
        (f,) = _findings(both, code)
        assert f.severity.value == "warning", code


def test_momentum_zero_in_one_branch_names_it():
    src = ("import torch\nimport torchvision\nmodel = torchvision.models.resnet50()\n"
           "m = 0.0 if args.plain else 0.9\n"
           "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=m)\n")
    (f,) = _findings(src, "RC606")
    assert "args.plain" in f.message
    assert _findings(src.replace("0.0 if", "0.8 if"), "RC606") == []


# ----------------------------------------------------------------------- other modules


def test_optimizer_built_in_model_py_with_the_train_scripts_lr():
    bad = _lint_file(PROJECTS / "optim_in_model" / "train.py", "RC602")
    assert [(f.line, f.severity.value) for f in bad] == [(13, "warning")]
    assert "configure_optimizers" in bad[0].message and "model.py" in bad[0].message
    assert _lint_file(PROJECTS / "optim_in_model" / "train_ok.py", "RC602") == []


def test_optimizer_settings_from_a_config_dataclass():
    path = PROJECTS / "optim_config_class" / "train.py"
    codes = {f.code: f.severity.value for f in lint_source(path.read_bytes(), str(path), RULES).findings}
    assert codes == {"RC601": "warning", "RC602": "warning", "RC603": "warning", "RC604": "info"}


def test_the_linked_project_is_what_finds_them(monkeypatch):
    monkeypatch.setenv("RECIPECHECK_NO_PROJECT", "1")
    assert _lint_file(PROJECTS / "optim_in_model" / "train.py", "RC602") == []
    assert _lint_file(PROJECTS / "init_arg" / "train.py", "RC301") == []


def test_lightning_module_optimizer_reported_at_its_construction(tmp_path):
    _tree(tmp_path, {
        "setup.py": "",
        "lit.py": ("import lightning as L\nimport torch\nimport torch.nn as nn\n\n"
                   "class Lit(L.LightningModule):\n    def __init__(self, lr=1e-3):\n        super().__init__()\n"
                   "        self.lr = lr\n        self.net = nn.Linear(4, 2)\n\n"
                   "    def configure_optimizers(self):\n"
                   "        return torch.optim.Adam(self.parameters(), lr=self.lr)\n"),
        "train.py": ("import lightning as L\nfrom lit import Lit\n\n"
                     "model = Lit(lr=1.0)\nL.Trainer(max_epochs=3).fit(model)\n"),
        "train_ok.py": ("import lightning as L\nfrom lit import Lit\n\n"
                        "model = Lit(lr=3e-4)\nL.Trainer(max_epochs=3).fit(model)\n"),
    })
    found = _lint_file(tmp_path / "train.py", "RC602")
    assert [(f.line, f.severity.value) for f in found] == [(4, "warning")]
    assert _lint_file(tmp_path / "train_ok.py", "RC602") == []
    # the module itself, linted alone, does not know which lr it gets
    assert _lint_file(tmp_path / "lit.py", "RC602") == []


def test_a_class_that_zeroes_by_its_own_literal_is_reported_in_its_module_only(tmp_path):
    _tree(tmp_path, {
        "setup.py": "",
        "net.py": ("import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self, c=0.0):\n"
                   "        super().__init__()\n        self.fc1 = nn.Linear(8, 16)\n"
                   "        self.fc2 = nn.Linear(16, 2)\n        nn.init.constant_(self.fc1.weight, 0.0)\n"
                   "        nn.init.constant_(self.fc2.weight, c)\n\n"
                   "    def forward(self, x):\n        return self.fc2(self.fc1(x))\n"),
        "train.py": "from net import Net\n\nmodel = Net(c=0.5)\n",
    })
    assert [f.line for f in _lint_file(tmp_path / "net.py", "RC301")] == [8]
    assert _lint_file(tmp_path / "train.py", "RC301") == []
    # fc2 (the output layer) gets the constant 0.5 from train.py: a constant init, reported there
    assert [f.line for f in _lint_file(tmp_path / "train.py", "RC302")] == [3]


@pytest.mark.parametrize("script,expected", [("train.py", [(6, "error")]), ("train_default.py", [])])
def test_zero_constant_passed_to_a_class_of_another_module(script, expected):
    found = _lint_file(PROJECTS / "init_arg" / script, "RC301")
    assert [(f.line, f.severity.value) for f in found] == expected


_RNN_EVAL = (
    "import argparse\nimport torch\nimport torch.nn as nn\n\n"
    "parser = argparse.ArgumentParser()\nparser.add_argument('--dropout', type=float, default={d})\n"
    "args = parser.parse_args()\n\n\nclass Net(nn.Module):\n    def __init__(self, dropout):\n"
    "        super().__init__()\n        self.rnn = nn.LSTM(10, 20, 2, dropout=dropout)\n"
    "        self.fc = nn.Linear(20, 2)\n\n    def forward(self, x):\n        return self.fc(self.rnn(x)[0])\n\n\n"
    "model = Net(args.dropout)\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
    "for epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n        opt.zero_grad()\n"
    "        loss = nn.functional.cross_entropy(model(x), y)\n        loss.backward()\n"
    "        nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n        opt.step()\n"
    "    with torch.no_grad():\n        for x, y in val_loader:\n"
    "            print(model(x).argmax(-1).eq(y).float().mean())\n")


@pytest.mark.parametrize("default,severity", [("0.0", "info"), ("0.2", "error"), ("args_unknown", "error")])
def test_rnn_dropout_through_a_parameter_decides_whether_eval_mode_matters(default, severity):
    src = _RNN_EVAL.format(d=default)
    (f,) = _findings(src, "RC701")
    assert f.severity.value == severity


def test_batch_size_small_in_one_branch_is_info():
    src = ("import torch.nn as nn\nfrom torch.utils.data import DataLoader\n"
           "model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())\n"
           "bs = 4 if args.debug else 64\n"
           "loader = DataLoader(ds, batch_size=bs, shuffle=True)\n"
           "for x, y in loader:\n    opt.zero_grad()\n    crit(model(x), y).backward()\n    opt.step()\n")
    (f,) = _findings(src, "RC509")
    assert f.severity.value == "info" and "args.debug" in f.message
    (g,) = _findings(src.replace("64", "2"), "RC509")
    assert g.severity.value == "warning"


def test_init_scale_through_a_name_and_a_config_field():
    src = ("import torch.nn as nn\nfrom dataclasses import dataclass\n\n@dataclass\nclass Cfg:\n"
           "    init_std: float = {std}\n\nclass Net(nn.Module):\n    def __init__(self, cfg):\n"
           "        super().__init__()\n        self.fc1 = nn.Linear(64, 64)\n        self.fc2 = nn.Linear(64, 64)\n"
           "        self.fc3 = nn.Linear(64, 10)\n        for m in (self.fc1, self.fc2):\n"
           "            nn.init.normal_(m.weight, 0.0, cfg.init_std)\n\n"
           "    def forward(self, x):\n        return self.fc3(self.fc2(self.fc1(x).relu()).relu())\n\n"
           "model = Net(Cfg())\n")
    assert [f.line for f in _findings(src.format(std="1.0"), "RC303")] == [15]
    assert _findings(src.format(std="0.02"), "RC303") == []


_LOADER = ("import torch\nfrom torch.utils.data import DataLoader\nSHUFFLE = {v}\n"
           "train_loader = DataLoader(train_set, batch_size=64, shuffle=SHUFFLE)\nmodel = Net()\n"
           "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\nfor epoch in range(10):\n"
           "    for x, y in train_loader:\n        opt.zero_grad()\n        crit(model(x), y).backward()\n"
           "        opt.step()\n")


@pytest.mark.parametrize("v,lines", [("False", [4]), ("True", []), ("args.shuffle", []),
                                     ("False if args.debug else True", [])])
def test_shuffle_flag_through_a_name(v, lines):
    assert [f.line for f in _findings(_LOADER.format(v=v), "RC401")] == lines


def test_init_helper_of_another_module_judged_per_call(tmp_path):
    _tree(tmp_path, {
        "setup.py": "",
        "utils.py": ("import torch.nn as nn\n\n\ndef init_linear(layer, value):\n"
                     "    nn.init.constant_(layer.weight, value)\n    nn.init.zeros_(layer.bias)\n"),
        "train.py": ("import torch.nn as nn\nfrom utils import init_linear\n\n"
                     "fc1 = nn.Linear(8, 16)\nfc2 = nn.Linear(16, 16)\nfc3 = nn.Linear(16, 2)\n"
                     "init_linear(fc1, 0.0)\ninit_linear(fc2, 0.01)\n"
                     "model = nn.Sequential(fc1, nn.ReLU(), fc2, nn.ReLU(), fc3)\n"),
    })
    # each call is judged with its own argument: fc1 is zeroed, fc2 set to a constant
    assert [(f.line, f.severity.value) for f in _lint_file(tmp_path / "train.py", "RC301")] == [(7, "error")]
    assert [(f.line, f.severity.value) for f in _lint_file(tmp_path / "train.py", "RC302")] == [(8, "error")]
    assert _lint_file(tmp_path / "utils.py", "RC301") == []


def test_a_default_counts_fully_only_where_the_code_calls_the_function():
    src = ("import torch\ndef build(model, lr=10.0):\n"
           "    return torch.optim.Adam(model.parameters(), lr=lr)\n")
    # never called here: a caller elsewhere may pass another lr, so only info
    (f,) = _findings(src, "RC602")
    assert f.severity.value == "info"
    (g,) = _findings(src + "opt = build(net)\n", "RC602")
    assert g.severity.value == "warning"
    assert _findings(src + "opt = build(net, lr=1e-3)\n", "RC602") == []


def test_a_literal_of_the_other_module_is_that_modules_finding(tmp_path):
    _tree(tmp_path, {
        "setup.py": "",
        "model.py": ("import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n"
                     "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n\n"
                     "    def configure_optimizers(self, wd):\n"
                     "        return torch.optim.Adam(self.parameters(), lr=0.5, weight_decay=wd)\n"),
        "train.py": "from model import Net\n\nmodel = Net()\nopt = model.configure_optimizers(0.1)\n",
    })
    # lr=0.5 is written in model.py: reported there only; the decay comes from train.py
    assert [f.line for f in _lint_file(tmp_path / "model.py", "RC602")] == [10]
    assert _lint_file(tmp_path / "train.py", "RC602") == []
    assert [f.line for f in _lint_file(tmp_path / "train.py", "RC603")] == [4]
    assert _lint_file(tmp_path / "model.py", "RC603") == []


def test_a_bad_default_of_the_other_module_used_by_this_file(tmp_path):
    _tree(tmp_path, {
        "setup.py": "",
        "model.py": ("import torch\nimport torch.nn as nn\n\nclass Net(nn.Module):\n"
                     "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(4, 2)\n\n"
                     "    def configure_optimizers(self, lr=0.5):\n"
                     "        return torch.optim.Adam(self.parameters(), lr=lr)\n"),
        "train.py": "from model import Net\n\nmodel = Net()\nopt = model.configure_optimizers()\n",
    })
    # train.py uses the default: certain there; model.py alone cannot know its callers: info
    assert [(f.line, f.severity.value) for f in _lint_file(tmp_path / "train.py", "RC602")] == [(4, "warning")]
    assert [(f.line, f.severity.value) for f in _lint_file(tmp_path / "model.py", "RC602")] == [(10, "info")]


def test_self_attribute_is_read_from_its_own_class():
    src = ("import torch\nclass A:\n    def __init__(self, model):\n        self.lr = 0.1\n"
           "        self.opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)\n"
           "class B:\n    def __init__(self, model):\n        self.lr = 1e-3\n"
           "        self.opt = torch.optim.Adam(model.parameters(), lr=self.lr)\n")
    assert _findings(src, "RC602") == []
    (f,) = _findings(src.replace("self.lr = 1e-3", "self.lr = 0.5"), "RC602")
    assert f.line == 9 and f.severity.value == "warning"


def test_cross_module_lr_bad_in_one_branch_is_info():
    (f,) = _lint_file(PROJECTS / "optim_in_model" / "train_branch.py", "RC602")
    assert f.line == 16 and f.severity.value == "info" and "args.big_lr" in f.message


@pytest.mark.parametrize("flag,severity", [("False", "warning"), ("True", None), ("args.decoupled", "info"),
                                           ("DEC", "warning")])
def test_adam_decoupled_flag_through_values(flag, severity):
    src = ("import torch\nDEC = False\n"
           f"opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.01, decoupled_weight_decay={flag})\n")
    found = [f.severity.value for f in _findings(src, "RC601")]
    assert found == ([severity] if severity else [])
