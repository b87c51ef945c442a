"""Premises (RULES.md "Premises"): rules report only where their premise holds, and at `info`
where it is likely but not shown. Sources are in the shape of real training code."""

import libcst as cst
import pytest

from recipecheck.engine import fix_source, lint_source
from recipecheck.finding import Severity
from recipecheck.program.model import build_program
from recipecheck.rule import Context, Rule, all_rules

ALL = [r() for r in all_rules()]


def found(src, code, path="train.py"):
    res = lint_source(src, path, ALL)
    assert res.errors == []
    return [(f.line, f.severity.value) for f in res.findings if f.code == code]


# ------------------------------------------------------------------ the rule API


class _Loud(Rule):
    CODE = "RC999"
    NAME = "test-only"
    SEVERITY = Severity.WARNING
    MESSAGE = "m"


def test_report_lowers_severity_but_never_raises_it():
    module = cst.parse_module("x = 1\n")
    ctx = Context("t.py", "x = 1\n", module, build_program(module))
    ctx._rule = _Loud()
    ctx.report(module.body[0], "low", severity=Severity.INFO)
    ctx.report(module.body[0].body[0], "high", severity=Severity.ERROR)
    assert [r.severity for r in ctx.reports] == [Severity.INFO, None]


# ------------------------------------------------------------------ RC701 / RC702

EVAL_LOOP = (
    "import torch\nimport torch.nn as nn\n"
    "class Tagger(nn.Module):\n"
    "    def __init__(self):\n        super().__init__()\n"
    "        self.rnn = nn.LSTM(32, 64, 2{extra})\n        self.out = nn.Linear(64, 5)\n"
    "    def forward(self, x):\n        return self.out(self.rnn(x)[0])\n"
    "model = Tagger()\n"
    "opt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
    "for epoch in range(10):\n"
    "    for x, y in train_loader:\n"
    "        opt.zero_grad()\n        crit(model(x), y).backward()\n"
    "        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n        opt.step()\n"
    "    with torch.no_grad():\n"
    "        for x, y in val_loader:\n            model(x)\n"
)


def test_rc701_lstm_without_dropout_is_mode_free_info():
    assert found(EVAL_LOOP.format(extra=""), "RC701") == [(19, "info")]


def test_rc701_lstm_with_dropout_is_an_error():
    assert found(EVAL_LOOP.format(extra=", dropout=0.3"), "RC701") == [(19, "error")]


def test_rc702_mode_free_model_is_info_and_with_dropout_an_error():
    src = ("import torch\nimport torch.nn as nn\n"
           "model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 2))\n"
           "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
           "model.train()\n"
           "for epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
           "        nn.functional.cross_entropy(model(x), y).backward()\n        opt.step()\n"
           "    model.eval()\n    with torch.no_grad():\n        for x, y in val_loader:\n"
           "            model(x)\n")
    assert found(src, "RC702") == [(11, "info")]
    with_dropout = src.replace("nn.ReLU(), nn.Linear(10, 2)", "nn.ReLU(), nn.Dropout(0.2), nn.Linear(10, 2)")
    assert found(with_dropout, "RC702") == [(11, "error")]


def test_rc701_fix_also_restores_train_mode_where_training_follows():
    src = ("import torch\nimport torch.nn as nn\n"
           "model = nn.Sequential(nn.Linear(10, 10), nn.Dropout(0.5), nn.Linear(10, 2))\n"
           "opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
           "for epoch in range(10):\n"
           "    for x, y in train_loader:\n        opt.zero_grad()\n"
           "        nn.functional.cross_entropy(model(x), y).backward()\n        opt.step()\n"
           "    with torch.no_grad():\n        for x, y in val_loader:\n            model(x)\n")
    assert found(src, "RC701") == [(11, "error")]
    fixed, _ = fix_source(src, "train.py", ALL, mode="safe")
    assert "model.eval()" in fixed and "model.train()" in fixed
    lines = fixed.splitlines()
    assert lines.index("    model.train()") < next(i for i, l in enumerate(lines) if "train_loader" in l)
    assert found(fixed, "RC701") == [] and found(fixed, "RC702") == []


# ------------------------------------------------------------------ RC301-RC303

ZERO_INIT = (
    "import torch\nimport torch.nn as nn\n"
    "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.fc1 = nn.Linear(8, 16)\n        self.fc2 = nn.Linear(16, 16)\n"
    "        self.out = nn.Linear(16, 2)\n"
    "        nn.init.zeros_(self.fc1.weight)\n"
    "        self.w = nn.Parameter(torch.randn(16, 8))\n"
)


def test_rc301_rc303_quiet_in_test_files_only():
    assert found(ZERO_INIT, "RC301", "models/net.py") == [(9, "error")]
    assert found(ZERO_INIT, "RC303", "models/net.py") == [(10, "warning")]
    for path in ("tests/test_layers.py", "test_models.py", "pkg/layers_test.py"):
        assert found(ZERO_INIT, "RC301", path) == []
        assert found(ZERO_INIT, "RC303", path) == []


@pytest.mark.parametrize("stmt", [
    "self.layer_scale = nn.Parameter(torch.zeros(16, 16))",
    "self.gate = nn.Parameter(torch.zeros(16, 16))",
    "self.query_tokens = nn.Parameter(torch.zeros(16, 16))",
])
def test_rc301_gates_and_tokens_are_not_weights(stmt):
    src = ZERO_INIT.replace("        nn.init.zeros_(self.fc1.weight)\n", f"        {stmt}\n")
    assert found(src, "RC301") == []


# ------------------------------------------------------------------ RC605

RNN_TRAIN = (
    "import torch\nimport torch.nn as nn\n"
    "seq_len = {seq}\n"
    "rnn = nn.LSTM(28, 128, batch_first=True)\nhead = nn.Linear(128, 10)\n"
    "opt = torch.optim.{opt}(list(rnn.parameters()) + list(head.parameters()), lr=0.01)\n"
    "for epoch in range(5):\n"
    "    for x, y in loader:\n"
    "        opt.zero_grad()\n"
    "        out, _ = rnn(x)\n"
    "        loss = crit({logits}, y)\n"
    "        loss.backward()\n        opt.step()\n"
)


def test_rc605_short_sequence_classifier_is_info():
    src = RNN_TRAIN.format(seq=28, opt="Adam", logits="head(out[:, -1])")
    assert found(src, "RC605") == [(4, "info")]


def test_rc605_per_step_loss_over_long_or_unknown_sequences_is_a_warning():
    per_step = "head(out).view(-1, 10)"
    assert found(RNN_TRAIN.format(seq=200, opt="Adam", logits=per_step), "RC605") == [(4, "warning")]
    unknown = RNN_TRAIN.format(seq=28, opt="Adam", logits=per_step).replace("seq_len = 28\n", "")
    assert found(unknown, "RC605") == [(3, "warning")]
    assert found(RNN_TRAIN.format(seq=28, opt="Adam", logits=per_step), "RC605") == [(4, "info")]


def test_rc605_lbfgs_is_info():
    src = RNN_TRAIN.format(seq=1000, opt="LBFGS", logits="head(out).view(-1, 10)")
    assert found(src, "RC605") == [(4, "info")]


# ------------------------------------------------------------------ RC602 / RC603

def test_rc602_tiny_rl_policy_is_info_and_plain_model_a_warning():
    plain = ("import torch\nmodel = Net()\n"
             "optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)\n")
    assert found(plain, "RC602") == [(3, "warning")]
    rl = ("import gymnasium as gym\n" + plain + "env = gym.make('CartPole-v1')\n")
    assert found(rl, "RC602") == [(4, "info")]


def test_rc602_rc603_linear_probe_on_frozen_features_is_info():
    src = ("import torch\n"
           "for p in backbone.parameters():\n    p.requires_grad = False\n"
           "linear_classifier = torch.nn.Linear(768, 1000)\n"
           "optimizer = torch.optim.Adam(linear_classifier.parameters(), lr=0.1, weight_decay=0.05)\n")
    assert found(src, "RC602") == [(5, "info")]
    assert found(src, "RC603") == [(5, "info")]


def test_rebinding_a_model_to_a_call_on_itself_does_not_recurse():
    # `generator = generator.cuda()` once sent module resolution (RC509) into endless recursion
    src = ("import torch\nimport torch.nn as nn\n"
           "class Generator(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
           "        self.net = nn.Sequential(nn.Linear(100, 128), nn.BatchNorm1d(128), nn.ReLU())\n"
           "    def forward(self, z):\n        return self.net(z)\n"
           "generator = Generator()\nif cuda:\n    generator = generator.cuda()\n"
           "opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))\n"
           "loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)\n"
           "for epoch in range(10):\n    for x, _ in loader:\n        opt.zero_grad()\n"
           "        generator(torch.randn(4, 100)).mean().backward()\n        opt.step()\n")
    res = lint_source(src, "gan.py", ALL)
    assert res.errors == []
    assert [f.line for f in res.findings if f.code == "RC509"] == [13]


def test_rc305_not_in_a_test_suite():
    from recipecheck.engine import lint_source
    from recipecheck.rule import all_rules

    rules = [r() for r in all_rules()]
    src = ("import torch\nimport torch.nn as nn\n\n\nclass Probe(nn.Module):\n    def __init__(self):\n"
           "        super().__init__()\n        self.indices = nn.Parameter(torch.empty(1, 2, 2))\n\n"
           "    def forward(self, x):\n        return x + self.indices\n")
    codes = lambda path: [f.code for f in lint_source(src, path, rules).findings]  # noqa: E731
    assert "RC305" in codes("models/probe.py")
    assert "RC305" not in codes("tests/test_hooks.py") and "RC305" not in codes("probe_test.py")
