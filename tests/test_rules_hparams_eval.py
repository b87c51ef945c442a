"""RC6xx (optimizer hyperparameters) and RC7xx (evaluation protocol): analysis, options, fixes."""

from pathlib import Path

import libcst as cst
import pytest

from recipecheck.engine import fix_source, lint_source
from recipecheck.program.evaluation import analysis, split_kind
from recipecheck.program.hparams import number
from recipecheck.program.model import build_program
from recipecheck.rule import all_rules, options_for, rule_by_code

ROOT = Path(__file__).resolve().parent.parent
FIXES = ROOT / "fixtures" / "fixes"
ALL = [r() for r in all_rules()]
MY_FIX_PREFIXES = ("rc601_", "rc701_", "rc702_", "rc204_unsafe_")


def lint(src, rules=ALL):
    res = lint_source(src, "t.py", rules)
    assert res.errors == []
    return res.findings


def codes(src, prefix=("RC6", "RC7")):
    return sorted((f.line, f.code) for f in lint(src) if f.code.startswith(prefix))


# ------------------------------------------------------------------------ fixes


def _fix_cases():
    return sorted(p for p in FIXES.glob("*.in.py") if p.name.startswith(MY_FIX_PREFIXES))


@pytest.mark.parametrize("path", _fix_cases(), ids=lambda p: p.name)
def test_fix_fixture(path):
    src = path.read_text()
    mode = "unsafe" if "unsafe" in path.name else "safe"
    code = path.name.split("_", 1)[0].upper()
    assert any(f.code == code for f in lint(src)), "the .in.py must have the finding"
    out, res = fix_source(src, str(path), ALL, mode=mode)
    assert out == path.with_name(path.name.replace(".in.py", ".out.py")).read_text()
    cst.parse_module(out)
    assert not any(f.code == code for f in res.findings)
    again, _ = fix_source(out, str(path), ALL, mode=mode)
    assert again == out


def test_safe_mode_does_not_apply_the_rc204_fix():
    src = (FIXES / "rc204_unsafe_val_loss.in.py").read_text()
    out, _ = fix_source(src, "t.py", ALL, mode="safe")
    assert out == src


def test_rc204_fix_picks_the_metric_matching_the_mode():
    base = ("from torch.optim.lr_scheduler import ReduceLROnPlateau\n"
            "sched = ReduceLROnPlateau(opt, mode={mode!r})\nfor epoch in range(10):\n"
            "    val_loss, val_acc = evaluate()\n    sched.step()\n")
    out, _ = fix_source(base.format(mode="max"), "t.py", ALL, mode="unsafe")
    assert "sched.step(val_acc)" in out
    out, _ = fix_source(base.format(mode="min"), "t.py", ALL, mode="unsafe")
    assert "sched.step(val_loss)" in out
    ambiguous = ("from torch.optim.lr_scheduler import ReduceLROnPlateau\nsched = ReduceLROnPlateau(opt)\n"
                 "for epoch in range(10):\n    val_loss = a()\n    valid_loss = b()\n    sched.step()\n")
    out, _ = fix_source(ambiguous, "t.py", ALL, mode="unsafe")
    assert out == ambiguous


@pytest.mark.parametrize("src,expected", [
    ("import torch\nopt = torch.optim.Adam(m.parameters(), weight_decay=1e-4)\n", "torch.optim.AdamW("),
    ("from torch import optim\nopt = optim.Adam(m.parameters(), weight_decay=1e-4)\n", "optim.AdamW("),
    ("from torch.optim import Adam\nopt = Adam(m.parameters(), weight_decay=1e-4)\n",
     "from torch.optim import Adam, AdamW\nopt = AdamW("),
    ("from torch.optim import *\nopt = Adam(m.parameters(), weight_decay=1e-4)\n",
     "from torch.optim import *\nopt = AdamW("),
])
def test_rc601_fix_keeps_the_import_style(src, expected):
    # the fix changes the effective regularization, so it is unsafe: never applied by plain --fix
    assert fix_source(src, "t.py", ALL, mode="safe")[0] == src
    out, _ = fix_source(src, "t.py", ALL, mode="unsafe")
    assert expected in out
    cst.parse_module(out)


@pytest.mark.parametrize("src", [
    "from torch.optim import Adam as A\nopt = A(m.parameters(), weight_decay=1e-4)\n",
    "from torch.optim import RMSprop\nopt = RMSprop(m.parameters(), weight_decay=1e-4)\n",
])
def test_rc601_reports_without_fix_when_not_a_plain_rename(src):
    res = lint_source(src, "t.py", ALL)
    f = [f for f in res.findings if f.code == "RC601"]
    assert len(f) == 1 and f[0].fix is None


def test_rc702_no_fix_when_eval_happens_inside_the_batch_loop():
    src = ("import torch\n@torch.no_grad()\ndef estimate_loss():\n    model.eval()\n"
           "    for k in range(10):\n        model(*get_batch('val'))\n"
           "model = GPT()\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4)\n"
           "for it in range(1000):\n    if it % 100 == 0:\n        estimate_loss()\n"
           "    loss = model(x)\n    loss.backward()\n    opt.step()\n    opt.zero_grad()\n")
    f = [f for f in lint(src) if f.code == "RC702"]
    assert [x.line for x in f] == [4] and f[0].fix is None


# ------------------------------------------------------------------------ options


def test_rc602_thresholds_are_options():
    rule = rule_by_code("RC602")
    src = "import torch\nopt = torch.optim.SGD(m.parameters(), lr=5.0, momentum=0.9)\n"
    assert [f.code for f in lint(src, [rule()])] == ["RC602"]
    relaxed = rule(options_for(rule, {"max-sgd-lr": 10}))
    assert lint(src, [relaxed]) == []
    strict = rule(options_for(rule, {"max-adaptive-lr": 1e-4}))
    assert [f.code for f in lint("import torch\nopt = torch.optim.Adam(m.parameters(), lr=3e-4)\n",
                                 [strict])] == ["RC602"]
    with pytest.raises(Exception):
        options_for(rule, {"max-lr": 1})


def test_rc603_thresholds_are_options():
    rule = rule_by_code("RC603")
    src = "import torch\nopt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-3)\n"
    assert lint(src, [rule()]) == []
    assert [f.code for f in lint(src, [rule(options_for(rule, {"max-weight-decay": 1e-3}))])] == ["RC603"]
    pen = ("for x, y in loader:\n"
           "    loss = crit(model(x), y) + 0.05 * sum(p.pow(2).sum() for p in model.parameters())\n")
    assert lint(pen, [rule()]) == []
    assert len(lint(pen, [rule(options_for(rule, {"max-penalty-lambda": 0.01}))])) == 1


def test_rc606_min_layers_option():
    rule = rule_by_code("RC606")
    src = ("import torch\nimport torch.nn as nn\nmodel = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
           "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n")
    assert lint(src, [rule()]) == []
    assert [f.code for f in lint(src, [rule(options_for(rule, {"min-layers": 2}))])] == ["RC606"]


# ------------------------------------------------------------------------ hyperparameter values


def test_number_follows_names_argparse_and_config_fields():
    src = ("import argparse\nfrom dataclasses import dataclass\nparser = argparse.ArgumentParser()\n"
           "parser.add_argument('--wd', '--weight-decay', default=5e-4, dest='weight_decay')\n"
           "parser.add_argument('--lr', type=float, default=0.1)\nargs = parser.parse_args()\n"
           "@dataclass\nclass Cfg:\n    dropout: float = 0.1\n    beta: float = 2 * 1e-3\n"
           "base = 1e-3\nscaled = base * 4\ncfg = Cfg()\n"
           "x = (args.weight_decay, args.lr, cfg.dropout, cfg.beta, scaled, args.unknown)\n")
    p = build_program(cst.parse_module(src))
    tup = p.module_function.bindings("x")[0].value
    values = [number(p, p.module_function, el.value) for el in tup.elements]
    assert values == [5e-4, 0.1, 0.1, 2e-3, 4e-3, None]


def test_adam_positional_weight_decay_and_param_group_values():
    assert codes("import torch\nopt = torch.optim.Adam(m.parameters(), 1e-3, (0.9, 0.999), 1e-8, 1e-4)\n") \
        == [(2, "RC601"), (2, "RC604")]
    assert codes("import torch\nopt = torch.optim.Adam([{'params': a, 'weight_decay': args.wd}], lr=1e-3)\n") == []


def test_rc602_skips_shared_lr_flag_and_clipped_rnn_lm():
    shared = ("import torch\nif args.opt == 'adam':\n    opt = torch.optim.Adam(m.parameters(), lr=args.lr)\n"
              "else:\n    opt = torch.optim.SGD(m.parameters(), lr=args.lr, momentum=0.9)\n"
              "import argparse\np = argparse.ArgumentParser()\np.add_argument('--lr', default=0.1)\n")
    assert codes(shared) == []


# ------------------------------------------------------------------------ evaluation analysis


@pytest.mark.parametrize("text,kind", [
    ("val_loader", "val"), ("valloader", "val"), ("loaders['val']", "val"), ("dev_ds", "val"),
    ("test_loader", "test"), ("testloader", "test"), ("X_test", "test"), ("values", None),
    ("latest", None), ("train_loader", None), ("eval_dataloader", "val"),
])
def test_split_kind(text, kind):
    assert split_kind(text) == kind


def _eval_loops(src):
    ev = analysis(build_program(cst.parse_module(src)))
    return [(e.node.loop.node.iter.value if isinstance(e.node.loop.node.iter, cst.Name) else "?",
             e.reasons) for e in ev.eval_loops]


def test_eval_loop_recognized_by_decorator_loader_construction_and_name():
    src = ("import torch\nfrom torch.utils.data import DataLoader\nfrom torchvision.datasets import MNIST\n"
           "held = DataLoader(MNIST('.', train=False), batch_size=100)\n"
           "other = DataLoader(val_ds, batch_size=100)\n"
           "@torch.inference_mode()\ndef score(model, loader):\n    for x, y in loader:\n        model(x)\n"
           "def validate(model, loader):\n    for x, y in loader:\n        model(x)\n"
           "model = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
           "for x, y in held:\n    model(x)\nfor x, y in other:\n    model(x)\n"
           "score(model, a)\nvalidate(model, b)\n")
    loops = dict(_eval_loops(src))
    assert "loader:test" in loops["held"]
    assert "loader:val" in loops["other"]
    reasons = [r for name, r in _eval_loops(src) if name == "loader"]
    assert ("no_grad",) in reasons and ("function",) in reasons


def test_ema_update_and_training_loops_are_not_eval_loops():
    src = ("import torch\nwith torch.no_grad():\n    for e, p in zip(ema.parameters(), model.parameters()):\n"
           "        e.mul_(0.99).add_(p, alpha=0.01)\n"
           "for x, y in val_loader:\n    opt.zero_grad()\n    model(x).sum().backward()\n    opt.step()\n")
    assert _eval_loops(src) == []


def test_trainer_class_modes_through_self_methods():
    missing_eval = ("import torch\nclass T:\n    def __init__(self, model):\n        self.model = model\n"
                    "    def train_epoch(self, loader):\n        self.model.train()\n        for x, y in loader:\n"
                    "            self.opt.zero_grad()\n            self.model(x).sum().backward()\n"
                    "            self.opt.step()\n"
                    "    @torch.no_grad()\n    def evaluate(self, loader):\n        for x, y in loader:\n"
                    "            self.model(x)\n"
                    "    def fit(self, tl, vl):\n        for epoch in range(10):\n            self.train_epoch(tl)\n"
                    "            self.evaluate(vl)\n")
    assert codes(missing_eval) == [(13, "RC701")]
    fixed = missing_eval.replace("        for x, y in loader:\n            self.model(x)\n",
                                 "        self.model.eval()\n        for x, y in loader:\n            self.model(x)\n")
    assert codes(fixed) == []


def test_ddp_module_eval_counts_for_the_wrapped_model():
    src = ("import torch\nfor epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n"
           "        opt.zero_grad()\n        crit(model(x), y).backward()\n        opt.step()\n"
           "    model.module.eval()\n    with torch.no_grad():\n        for x, y in val_loader:\n"
           "            model(x)\n")
    assert codes(src) == []


def test_conditional_train_mode_in_phase_loop_is_correct():
    src = (ROOT / "fixtures" / "scripts" / "clean" / "eval_transfer_learning_phases.py").read_text()
    assert codes(src) == []


def test_rc701_reports_eval_only_script_with_locally_built_model():
    src = ("import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    drop = nn.Dropout(0.5)\n"
           "model = Net()\nmodel.load_state_dict(torch.load('m.pt'))\n"
           "with torch.no_grad():\n    for x, y in test_loader:\n        print(model(x).argmax(1))\n")
    assert codes(src, ("RC701",)) == [(8, "RC701")]
    # from_pretrained returns the model in eval mode
    pretrained = ("import torch\nfrom transformers import AutoModel\nmodel = AutoModel.from_pretrained('bert')\n"
                  "with torch.no_grad():\n    for batch in test_loader:\n        model(**batch)\n")
    assert codes(pretrained, ("RC701",)) == []


def test_rc704_selection_forms():
    assert codes("best = 0\nfor epoch in range(3):\n    acc = evaluate(model, test_loader)\n"
                 "    is_best = acc > best\n    best = max(acc, best)\n", ("RC704",)) == [(4, "RC704"), (5, "RC704")]
    assert codes("for epoch in range(3):\n    test_loss = run(model, test_loader)\n"
                 "    early_stopping(test_loss, model)\n", ("RC704",)) == [(3, "RC704")]
    assert codes("for epoch in range(3):\n    loss_test = run(model, test_loader)\n"
                 "    if stopper.step(loss_test):\n        break\n", ("RC704",)) == [(3, "RC704")]
    assert codes("best = 0\nfor epoch in range(3):\n    acc = evaluate(model, val_loader)\n"
                 "    best = max(acc, best)\n", ("RC704",)) == []


def test_rc705_quiet_with_full_batch_validation_and_gan():
    src = ("import torch\nfor epoch in range(10):\n    for x, y in loader:\n        opt.zero_grad()\n"
           "        crit(model(x), y).backward()\n        opt.step()\n"
           "    with torch.no_grad():\n        print(crit(model(X_hold), y_hold).item())\n")
    assert codes(src) == []


@pytest.mark.parametrize("src,expected", [
    ("lrs = [0.001 * i for i in range(1, 11)]\nfor lr in lrs:\n    train(lr)\n", [(1, "RC706")]),
    ("lrs = [10 ** -i for i in range(1, 6)]\nfor lr in lrs:\n    train(lr)\n", []),
    ("import torch\nfor wd in torch.arange(0.0, 0.1, 0.01):\n    train(wd=wd)\n", [(2, "RC706")]),
    ("import numpy as np\nfor step, lr in enumerate(np.linspace(0, 1e-3, 100)):\n"
     "    set_lr(lr)\n    loss = model(x)\n    loss.backward()\n    opt.step()\n", []),
    ("from sklearn.model_selection import ParameterGrid\n"
     "for params in ParameterGrid({'lr': [1e-3, 1e-2], 'wd': [0, 1e-4]}):\n    train(**params)\n", [(2, "RC706")]),
])
def test_rc706_cases(src, expected):
    assert codes(src, ("RC706",)) == expected


def test_rc605_clipping_forms():
    base = ("import torch\nimport torch.nn as nn\nrnn = nn.LSTM(8, 8)\nfor x, y in loader:\n"
            "    opt.zero_grad()\n    crit(rnn(x)[0], y).backward()\n{clip}    opt.step()\n")
    assert codes(base.format(clip=""), ("RC605",)) == [(3, "RC605")]
    for clip in ("    accelerator.clip_grad_norm_(rnn.parameters(), 1.0)\n",
                 "    nn.utils.clip_grad_value_(rnn.parameters(), 0.5)\n",
                 "    for p in rnn.parameters():\n        p.grad.data.clamp_(-1, 1)\n"):
        assert codes(base.format(clip=clip), ("RC605",)) == []


def test_my_fixtures_lint_without_internal_errors():
    for p in sorted((ROOT / "fixtures" / "scripts").glob("*/*.py")):
        if p.name.startswith(("rc6", "rc7", "eval_", "hparams_")):
            assert lint_source(p.read_text(), str(p), ALL).errors == [], p.name


def test_mode_free_model_needs_no_eval_mode():
    src = ("import torch\nimport torch.nn as nn\n"
           "model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 2))\n"
           "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
           "for epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
           "        nn.functional.cross_entropy(model(x), y).backward()\n        opt.step()\n"
           "    with torch.no_grad():\n        for x, y in val_loader:\n            model(x)\n")
    # no effect today: at most an info finding (becomes wrong when Dropout is added)
    assert [(f.line, f.severity.value) for f in lint(src) if f.code == "RC701"] == [(11, "info")]
    with_dropout = src.replace("nn.ReLU(), nn.Linear(10, 2)", "nn.ReLU(), nn.Dropout(0.1), nn.Linear(10, 2)")
    assert [(f.line, f.severity.value) for f in lint(with_dropout) if f.code == "RC701"] == \
        [(11, "error")]


def test_rc701_no_fix_when_it_would_leave_training_in_eval_mode():
    src = ("import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    drop = nn.Dropout(0.5)\n"
           "model = Net()\nopt = torch.optim.AdamW(model.parameters(), lr=3e-4)\n"
           "for it in range(1000):\n    if it % 100 == 0:\n        with torch.no_grad():\n"
           "            for k in range(10):\n                model(val_x[k])\n"
           "    loss = model(x)\n    loss.backward()\n    opt.step()\n    opt.zero_grad()\n")
    f = [f for f in lint(src) if f.code == "RC701"]
    assert [x.line for x in f] == [10] and f[0].fix is None
