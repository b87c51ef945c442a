"""The layer-order analysis (recipecheck.program.layers) beyond the rules' own examples."""

import textwrap

import libcst as cst
import pytest

from recipecheck.engine import fix_source, lint_source
from recipecheck.program.layers import layer_analysis
from recipecheck.program.model import build_program
from recipecheck.rule import all_rules, rule_by_code

ALL = [r() for r in all_rules()]
HEAD = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nfrom collections import OrderedDict\n"


def prep(src: str) -> str:
    """Dedent a snippet that follows the shared import header."""
    if src.startswith(HEAD):
        return HEAD + textwrap.dedent(src[len(HEAD):])
    return textwrap.dedent(src)


def analyse(src: str):
    module = cst.parse_module(prep(src))
    return module, layer_analysis(build_program(module))


def kinds(ops) -> list[str]:
    return [o.kind for o in ops if o.kind != "shape"]


def unit_named(la, name):
    return next(u for u in la.units if u.name == name)


def codes(src: str, code: str, **options) -> list[int]:
    rules = ALL
    if options:
        rule = rule_by_code(code)
        rules = [r for r in ALL if r.CODE != code] + [rule(rule.Options(**options))]
    return sorted(f.line for f in lint_source(prep(src), "t.py", rules).findings if f.code == code)




# --------------------------------------------------------------------------- nn.Sequential


def test_sequential_positional_order_and_single_unit():
    _, la = analyse(HEAD + "model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1),"
                           " nn.Linear(8, 2), nn.Softmax(dim=1))\n")
    (u,) = la.units
    assert u.kind == "sequential" and u.top_level and u.instantiated
    assert kinds(u.output.ops) == ["linear", "bn", "act", "dropout", "linear", "softmax"]
    assert u.last_op().kind == "softmax"


def test_sequential_ordered_dict():
    _, la = analyse(HEAD + "model = nn.Sequential(OrderedDict([('fc', nn.Linear(4, 8)), ('drop', nn.Dropout(0.2)),"
                           " ('bn', nn.BatchNorm1d(8))]))\n")
    assert kinds(la.units[0].output.ops) == ["linear", "dropout", "bn"]


def test_star_list_built_in_static_loop_is_unrolled():
    _, la = analyse(HEAD + """
        def make(n):
            layers = [nn.Linear(3, 16)]
            for _ in range(3):
                layers += [nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU()]
            layers.append(nn.Linear(16, 1))
            return nn.Sequential(*layers)
        model = make(3)
        """)
    (u,) = la.units
    assert kinds(u.output.ops) == ["linear"] + ["linear", "bn", "act"] * 3 + ["linear"]
    assert u.instantiated


def test_star_list_with_append_extend_and_conditionals():
    _, la = analyse(HEAD + """
        layers = []
        for i in range(2):
            layers.append(nn.Linear(8, 8))
            if use_bn:
                layers.append(nn.BatchNorm1d(8))
            layers.extend([nn.ReLU(), nn.Dropout(0.1)])
        model = nn.Sequential(*layers)
        """)
    ops = la.units[0].output.ops
    assert kinds(ops) == ["linear", "bn", "act", "dropout"] * 2
    assert [o.conditional for o in ops if o.kind == "bn"] == [True, True]


def test_unknown_loop_count_unrolls_twice_and_dynamic_lists_are_skipped():
    _, la = analyse(HEAD + """
        def mlp(depth):
            layers = []
            for _ in range(depth):
                layers += [nn.Linear(8, 8), nn.Tanh()]
            return nn.Sequential(*layers)
        def dynamic(names):
            layers = [getattr(nn, n)() for n in names if n]
            layers.insert(0, nn.Linear(8, 8))
            return nn.Sequential(*layers)
        """)
    assert len(la.units) == 1
    assert kinds(la.units[0].output.ops) == ["linear", "tanh"] * 2


def test_sequential_nested_in_sequential_is_inlined_and_not_a_model():
    _, la = analyse(HEAD + "inner = 1\nmodel = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Dropout(0.5))\n")
    outer = next(u for u in la.units if u.top_level)
    assert kinds(outer.output.ops) == ["linear", "act", "dropout"]
    assert len(la.model_units()) == 1


# --------------------------------------------------------------------------- forward()


NET = HEAD + """
class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        out = out + x
        return out


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(10, 20)
        self.bn = nn.BatchNorm1d(20)
        self.blocks = nn.ModuleList([Block(20) for _ in range(3)])
        self.head = nn.Sequential(nn.Linear(20, 5), nn.LogSoftmax(dim=1))

    def _features(self, x):
        x = self.drop(x)
        x = self.bn(self.drop(self.fc(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x):
        x = self._features(x).view(x.size(0), -1).relu()
        x = F.dropout(x, 0.2, training=self.training)
        return self.head(x), x

model = Net()
"""


def test_forward_order_with_helpers_modulelists_submodules_and_sequential_attributes():
    _, la = analyse(NET)
    net = unit_named(la, "Net")
    assert net.top_level and net.instantiated
    assert kinds(net.output.ops) == (["dropout", "linear", "dropout", "bn"] + ["conv", "bn", "act", "add"] * 3
                                     + ["act", "dropout", "linear", "log_softmax"])
    block = unit_named(la, "Block")
    assert not block.top_level  # built inside Net's ModuleList
    assert kinds(block.output.ops) == ["conv", "bn", "act", "add"]


def test_forward_ops_are_resolved_to_init_constructions():
    _, la = analyse(NET)
    net = unit_named(la, "Net")
    bn = next(s.op for s in net.steps if s.op.kind == "bn" and s.op.attr == "self.bn")
    assert bn.ctor is not None and bn.qualname == "torch.nn.BatchNorm1d"
    assert bn.describe() == "`self.bn` (nn.BatchNorm1d)"
    first = net.steps[0]
    assert first.op.kind == "dropout" and first.from_input and not first.before


@pytest.mark.parametrize("expr,kind", [
    ("F.relu(h)", "act"), ("torch.sigmoid(h)", "sigmoid"), ("torch.softmax(h, 1)", "softmax"),
    ("h.relu()", "act"), ("h.tanh()", "tanh"), ("h.log_softmax(-1)", "log_softmax"),
    ("F.dropout(h, 0.1, self.training)", "dropout"), ("nn.functional.gelu(h)", "act"),
])
def test_functional_and_tensor_method_ops(expr, kind):
    _, la = analyse(HEAD + f"""
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
            def forward(self, x):
                h = self.fc(x)
                return {expr}
        """)
    assert kinds(unit_named(la, "M").output.ops) == ["linear", kind]


def test_conditional_returns_do_not_define_the_output():
    _, la = analyse(HEAD + """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(2, 2)
            def forward(self, x):
                logits = self.fc(x)
                if not self.training:
                    return logits.softmax(-1)
                return logits
        """)
    assert unit_named(la, "M").last_op().kind == "linear"


def test_branches_merge_and_residual_adds_break_adjacency():
    _, la = analyse(HEAD + """
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.1)
                self.bn = nn.BatchNorm1d(4)
                self.fc = nn.Linear(4, 4)
            def forward(self, x):
                y = self.drop(x)
                y = y + x
                return self.bn(y)
        """)
    bn_step = next(s for s in unit_named(la, "M").steps if s.op.kind == "bn")
    assert bn_step.previous()[0].kind == "add"


def test_model_of_call_resolves_instances_self_and_sequential():
    module, la = analyse(NET + "out = model(inp)\n")
    p = la.p
    call = next(cs for cs in p.calls if cs.dotted == "model")
    assert la.model_of_call(call.node, call.function).name == "Net"


def test_module_dict_entries_are_resolved():
    _, la = analyse(HEAD + """
        class GPTLite(nn.Module):
            def __init__(self):
                super().__init__()
                self.t = nn.ModuleDict(dict(wte=nn.Embedding(10, 8), drop=nn.Dropout(0.1), ln=nn.LayerNorm(8)))
                self.head = nn.Linear(8, 10)
            def forward(self, idx):
                x = self.t.drop(self.t.wte(idx))
                return self.head(self.t.ln(x))
        model = GPTLite()
        """)
    assert kinds(unit_named(la, "GPTLite").output.ops) == ["embedding", "dropout", "norm", "linear"]


def test_pathological_nesting_stays_bounded():
    body = "import torch.nn as nn\nlayers = []\n"
    ind = ""
    for _ in range(6):
        body += f"{ind}for _ in range(16):\n"
        ind += "    "
    body += f"{ind}layers += [nn.Linear(8, 8), nn.Dropout(0.1), nn.BatchNorm1d(8)]\nmodel = nn.Sequential(*layers)\n"
    _, la = analyse(body)
    assert len(la.units[0].steps) <= 4000
    assert codes(body, "RC501")  # still found


# --------------------------------------------------------------------------- rules: edge cases


def test_rc501_through_activation_and_across_submodules():
    src = HEAD + """
        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.bn = nn.BatchNorm1d(8)
                self.fc = nn.Linear(8, 2)
            def forward(self, x):
                return self.fc(self.bn(x))
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 8)
                self.drop = nn.Dropout(0.3)
                self.head = Head()
            def forward(self, x):
                return self.head(F.relu(self.drop(self.fc(x))))
        model = Net()
        """
    assert codes(src, "RC501") == [12]  # the BN call inside Head, fed by Net's dropout


def test_rc504_only_for_whole_models():
    block_only = HEAD + """
        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.drop = nn.Dropout(0.1)
            def forward(self, x):
                return self.drop(self.fc(x))
        """
    assert codes(block_only, "RC504") == []
    assert codes(block_only + "model = Block()\n", "RC504") == [12]


def test_rc506_name_followed_and_log_softmax_nll_is_fine():
    src = HEAD + """
        crit = nn.CrossEntropyLoss()
        nll = nn.NLLLoss()
        for x, y in loader:
            out = model(x)
            logp = F.log_softmax(out, dim=1)
            a = nll(logp, y)
            b = crit(out, y)
            p = out.softmax(1)
        c = crit(p, y)
        """
    assert codes(src, "RC506") == [13]


def test_rc507_fix_keeps_layout_and_is_idempotent():
    src = prep(HEAD + """
        class M(nn.Module):
            def forward(self, x):
                x = F.dropout(x, 0.5)
                return F.dropout2d(
                    x,
                    p=0.1,
                )
        """)
    fixed, result = fix_source(src, "t.py", ALL)
    assert "F.dropout(x, 0.5, training=self.training)" in fixed
    assert "p=0.1,\n            training=self.training,\n        )" in fixed
    assert not [f for f in result.findings if f.code == "RC507"]
    assert fix_source(fixed, "t.py", ALL)[0] == fixed


def test_rc507_no_fix_without_self():
    src = HEAD + """
        class M(nn.Module):
            @staticmethod
            def noisy(x):
                return F.dropout(x, 0.5)
        """
    (f,) = [f for f in lint_source(prep(src), "t.py", ALL).findings if f.code == "RC507"]
    assert f.fix is None


def test_rc508_final_layer_allowance_and_option():
    src = HEAD + "model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.4), nn.Linear(8, 8), nn.ReLU(),\n" \
                 "                      nn.Dropout(0.6), nn.Linear(8, 2))\n"
    assert codes(src, "RC508") == []  # 0.6 right before the output layer
    assert codes(src, "RC508", max_hidden_p=0.3) == [5]
    assert codes(HEAD + "rnn = nn.LSTM(8, 8, 2, dropout=0.6)\nd = nn.Dropout(-0.1)\n", "RC508") == [5, 6]


def test_rc509_option_and_eval_loaders():
    src = HEAD + """
        from torch.utils.data import DataLoader
        model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.BatchNorm1d(4))
        train_loader = DataLoader(ds, batch_size=6, shuffle=True)
        test_loader = DataLoader(ds, batch_size=1)
        for x, y in train_loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        with torch.no_grad():
            for x, y in test_loader:
                model(x)
        """
    assert codes(src, "RC509") == [8]
    assert codes(src, "RC509", min_batch_size=4) == []


def test_rc510_counts_modulelist_loops_and_respects_option():
    src = HEAD + """
        class Deep(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(4)])
            def forward(self, x):
                for layer in self.layers:
                    x = torch.sigmoid(layer(x))
                return x
        model = Deep()
        """
    assert codes(src, "RC510") == []
    assert codes(src, "RC510", min_depth=4) == [12]


def test_modulelist_built_by_append_enumerated_and_indexed():
    _, la = analyse(HEAD + """
        class M(nn.Module):
            def __init__(self, n=3):
                super().__init__()
                self.layers = nn.ModuleList()
                for _ in range(2):
                    self.layers.append(nn.Linear(8, 8))
                    self.layers.append(nn.Tanh())
                self.norms = nn.ModuleList([nn.LayerNorm(8), nn.BatchNorm1d(8)])
            def forward(self, x):
                for i, layer in enumerate(self.layers):
                    x = layer(x)
                return self.norms[1](x)
        model = M()
        """)
    assert kinds(unit_named(la, "M").output.ops) == ["linear", "tanh", "linear", "tanh", "bn"]


def test_model_moved_with_to_device_and_passed_as_argument():
    src = HEAD + """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)
                self.sm = nn.Softmax(dim=1)
            def forward(self, x):
                return self.sm(self.fc(x))
        def train(net, loader, crit):
            for x, y in loader:
                crit(net(x), y).backward()
        model = Net().to("cuda")
        train(model, loader, nn.CrossEntropyLoss())
        """
    assert codes(src, "RC506") == [12]  # the self.sm(...) call in forward()
