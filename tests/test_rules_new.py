"""Targeted tests for the rules added by issue 9 (RC107-RC109, RC207, RC305, RC511, the
widened RC506/RC507) and their shared facts (program/gates.py, program/accumulation.py),
beyond the examples in each rule's VALID/INVALID."""

import textwrap

import libcst as cst

from recipecheck.engine import fix_source, lint_source
from recipecheck.program.accumulation import accumulations, exclusive, loop_guards
from recipecheck.program.gates import guards_of, mentions_training, training_gated
from recipecheck.program.model import build_program
from recipecheck.rule import all_rules

ALL = [r() for r in all_rules()]


def lines(src: str, code: str) -> list[int]:
    src = textwrap.dedent(src)
    return sorted(f.line for f in lint_source(src, "t.py", ALL).findings if f.code == code)


def _first_call(module: cst.Module, name: str) -> cst.Call:
    from recipecheck.program.nodes import walk
    from recipecheck.program.imports import dotted_name

    return next(n for n in walk(module) if isinstance(n, cst.Call) and dotted_name(n.func) == name)


# ----------------------------------------------------------------------------- gates


def test_training_gate_forms():
    src = textwrap.dedent("""
        def forward(self, x):
            if not self.training:
                return x
            return drop(x)
        def f2(self, x):
            if self.training and self.p > 0:
                x = drop(x)
            return keep(x)
        def f3(self, x):
            if self.training is False:
                pass
            else:
                x = drop(x)
            return x
        def f4(self, x):
            if self.use_drop:
                x = drop(x)
            return x
    """)
    m = cst.parse_module(src)
    fns = [s for s in m.body if isinstance(s, cst.FunctionDef)]
    gated = []
    for fn in fns:
        from recipecheck.program.nodes import walk
        from recipecheck.program.imports import dotted_name
        call = next(n for n in walk(fn) if isinstance(n, cst.Call) and dotted_name(n.func) == "drop")
        gated.append(training_gated(fn, call))
    assert gated == [True, True, True, False]
    keep = _first_call(m, "keep")
    assert not training_gated(fns[1], keep)


def test_mentions_training_polarity():
    t = cst.parse_expression("not self.training")
    assert mentions_training(t, False) and not mentions_training(t, True)
    assert not mentions_training(cst.parse_expression("self.training or warmup"), True)
    assert mentions_training(cst.parse_expression("self.training or warmup"), False) is False


def test_guards_include_early_continue():
    src = textwrap.dedent("""
        for i in range(10):
            work(i)
            if (i + 1) % k != 0:
                continue
            step(i)
    """)
    m = cst.parse_module(src)
    guards = guards_of(m, _first_call(m, "step"))
    assert len(guards) == 1 and guards[0].positive is False
    assert guards_of(m, _first_call(m, "work")) == []


# ----------------------------------------------------------------------------- accumulation


def test_accumulation_shapes_and_exclusive_branches():
    src = textwrap.dedent("""
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(loader):
            loss = crit(model(x), y) / k
            loss.backward()
            do_step = (i + 1) % k == 0
            if do_step:
                opt.step()
                opt.zero_grad()
    """)
    p = build_program(cst.parse_module(src))
    accs = accumulations(p)
    assert [a.shape for a in accs] == ["gated"]
    src2 = textwrap.dedent("""
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            crit(model(x), y).backward()
            if amp:
                scaler.step(opt)
            elif other:
                opt.step()
            else:
                opt.step()
    """)
    p2 = build_program(cst.parse_module(src2))
    assert accumulations(p2) == []
    xl = p2.batch_loops[0]
    steps = [e for e in xl.direct() if p2.optimizer_step_target(e.event)]
    assert len(steps) == 3
    g = [loop_guards(xl, e) for e in steps]
    assert exclusive(g[0], g[1]) and exclusive(g[0], g[2]) and exclusive(g[1], g[2])


def test_accumulation_through_helper_is_seen():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        def micro_step(x, y):
            opt.zero_grad()
            (crit(model(x), y) / k).backward()
        for i, (x, y) in enumerate(loader):
            micro_step(x, y)
            if (i + 1) % k == 0:
                opt.step()
    """
    assert lines(src, "RC108") == [8]  # reported where the loop calls the helper


# ----------------------------------------------------------------------------- RC107


def test_rc107_step_in_every_branch_and_after():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            crit(model(x), y).backward()
            if log:
                print("x")
            opt.step()
            opt.step()
    """
    assert lines(src, "RC107") == [10]


def test_rc107_two_optimizers_same_name_leaf_are_different():
    src = """
        import torch
        opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
        opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
        for x in loader:
            opt_a.zero_grad(); opt_b.zero_grad()
            loss(x).backward()
            opt_a.step()
            opt_b.step()
    """
    assert lines(src, "RC107") == []


def test_rc107_independent_conditions_not_reported():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            crit(model(x), y).backward()
            if cond_a:
                opt.step()
            if cond_b:
                opt.step()
    """
    assert lines(src, "RC107") == []


# ----------------------------------------------------------------------------- RC108 / RC109


def test_rc108_reset_under_own_window_gate_is_fine_and_counter_gate_not_accumulation():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(loader):
            if i % k == 0:
                opt.zero_grad()
            (crit(model(x), y) / k).backward()
            if (i + 1) % k == 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
    """
    assert lines(src, "RC108") == [] and lines(src, "RC109") == []


def test_rc108_other_model_reset_does_not_cover():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(loader):
            teacher.zero_grad()
            (crit(model(x), y) / k).backward()
            if (i + 1) % k == 0:
                opt.step()
                opt.zero_grad()
    """
    assert lines(src, "RC108") == []


def test_rc109_clip_after_early_continue_is_in_step_branch():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(loader):
            (crit(model(x), y) / k).backward()
            if (i + 1) % k != 0:
                continue
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
    """
    assert lines(src, "RC109") == [] and lines(src, "RC108") == []


def test_rc106_quiet_when_clip_is_in_the_other_amp_branch():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            loss = crit(model(x), y)
            if amp:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
    """
    assert lines(src, "RC106") == []
    assert lines(src, "RC107") == []


# ----------------------------------------------------------------------------- RC207


def test_rc207_args_unpacked_or_handed_away_is_not_reported():
    base = textwrap.dedent("""
        import argparse
        import torch
        parser = argparse.ArgumentParser()
        parser.add_argument('--lr_decay', type=float, default=0.1)
        args = parser.parse_args()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    """)
    assert lines(base, "RC207") == [5]
    assert lines(base + "trainer = Trainer(**vars(args))\n", "RC207") == []
    assert lines(base + "run_training(args, optimizer)\n", "RC207") == []
    assert lines(base + "logger.info(args)\n", "RC207") == [5]
    assert lines(base + "cfg = {'lr_decay': 0.5}\n", "RC207") == []


def test_rc207_options_file_without_parse_or_optimizer_is_skipped():
    src = """
        import argparse
        def get_parser():
            parser = argparse.ArgumentParser()
            parser.add_argument('--lr_decay_epochs', type=str, default='30,60')
            return parser
    """
    assert lines(src, "RC207") == []


# ----------------------------------------------------------------------------- RC305


def test_rc305_register_parameter_and_inherited_init():
    src = """
        import torch
        import torch.nn as nn
        class A(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.register_parameter('alpha', nn.Parameter(torch.empty(d, d)))
        class B(SomeBaseFromElsewhere):
            def __init__(self, d):
                super().__init__()
                self.beta = nn.Parameter(torch.empty(d, d))
        class C(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.gamma = nn.Parameter(torch.empty(d, d))
                with torch.no_grad():
                    self.gamma.copy_(torch.eye(d))
    """
    assert lines(src, "RC305") == [7]


def test_rc305_inference_file_loading_a_checkpoint_is_quiet():
    src = """
        import torch
        import torch.nn as nn
        class A(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.w = nn.Parameter(torch.Tensor(d, d))
        model = A(8)
        model.load_state_dict(torch.load('a.pt'))
        print(model(torch.randn(2, 8)))
    """
    assert lines(src, "RC305") == []


# ----------------------------------------------------------------------------- RC511


def test_rc511_lazy_and_instance_norm_and_keyword_forms():
    src = """
        import torch.nn as nn
        a = nn.LazyBatchNorm2d(0.9)
        b = nn.InstanceNorm2d(64, 0.8)
        c = nn.BatchNorm2d(64, eps=0.8)
        d = nn.BatchNorm1d(64, 1e-5, 0.8)
        e = nn.LazyBatchNorm1d(1e-3)
    """
    assert lines(src, "RC511") == [3, 4]


# ----------------------------------------------------------------------------- RC506 / RC507


def test_rc506_softmax_variable_into_nll():
    src = """
        import torch.nn as nn
        import torch.nn.functional as F
        criterion = nn.NLLLoss()
        for x, y in loader:
            probs = F.softmax(model(x), dim=-1)
            loss = criterion(probs, y)
            logp = F.log_softmax(model(x), dim=-1)
            loss2 = criterion(logp, y)
    """
    assert lines(src, "RC506") == [6]


def test_rc507_sdpa_fix_gates_dropout_p():
    src = textwrap.dedent("""
        import torch.nn as nn
        import torch.nn.functional as F
        class Attn(nn.Module):
            def forward(self, q, k, v):
                return F.scaled_dot_product_attention(q, k, v, dropout_p=self.p)
    """)
    fixed, result = fix_source(src, "t.py", ALL)
    assert "dropout_p=self.p if self.training else 0.0" in fixed
    assert [f.code for f in result.findings if f.code == "RC507"] == []


def test_rc507_positional_dropout_p_and_local_variable_not_gated():
    src = """
        import torch.nn as nn
        import torch.nn.functional as F
        class Attn(nn.Module):
            def forward(self, q, k, v):
                p = self.p
                a = F.scaled_dot_product_attention(q, k, v, None, p)
                return F.scaled_dot_product_attention(q, k, v, None, 0.0) + a
    """
    assert lines(src, "RC507") == [7]


def test_rc305_initialization_by_an_imported_function_is_not_reported():
    src = """
        import torch
        import torch.nn as nn
        from utils import weights_init, initialize_module
        class A(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.w = nn.Parameter(torch.empty(d, d))
        model = A(4)
        model.apply(weights_init)
    """
    assert lines(src, "RC305") == []
    src2 = src.replace("model.apply(weights_init)", "initialize_module(model)")
    assert lines(src2, "RC305") == []
    src3 = src.replace("model.apply(weights_init)", "print(model)")
    assert lines(src3, "RC305") == [8]


def test_accumulation_with_no_sync_branches_and_update_flag():
    # the shape of large image-model trainers: a need_update flag, no_sync() for the
    # accumulating micro-batches, the step in a nested helper, reset after `continue`
    body = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        def train_one_epoch(model, loader, opt, accum_steps):
            opt.zero_grad()
            for batch_idx, (x, y) in enumerate(loader):
                RESET_TOP
                need_update = (batch_idx + 1) % accum_steps == 0
                def _backward(_loss):
                    _loss.backward()
                    if need_update:
                        opt.step()
                loss = crit(model(x), y) / accum_steps
                if not need_update:
                    with model.no_sync():
                        _backward(loss)
                else:
                    _backward(loss)
                if not need_update:
                    continue
                opt.zero_grad()
        for epoch in range(10):
            train_one_epoch(model, loader, opt, 4)
    """
    quiet = body.replace("RESET_TOP", "pass")
    assert lines(quiet, "RC108") == [] and lines(quiet, "RC107") == []
    buggy = body.replace("RESET_TOP", "opt.zero_grad()")
    assert lines(buggy, "RC108") == [7]


def test_rc107_step_inside_iter_size_gate_and_again_outside():
    # a duplicate step left outside the accumulation branch (iter_size > 1)
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for i, (x, y) in enumerate(loader):
            loss = crit(model(x), y) / iter_size
            loss.backward()
            if (i + 1) % iter_size == 0:
                opt.step()
                opt.zero_grad()
            opt.step()
    """
    assert lines(src, "RC107") == [10]


def test_rc107_two_passes_with_reset_between_are_fine_but_backward_alone_is_not():
    base = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            opt.zero_grad()
            crit(model(x), y).backward()
            opt.step()
            RESET
            crit(model(x2), y).backward()
            opt.step()
    """
    assert lines(base.replace("RESET", "opt.zero_grad()"), "RC107") == []
    assert lines(base.replace("RESET", "pass"), "RC107") == [10]


def test_rc305_base_class_in_another_project_module_may_initialize(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "base.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        class Base(nn.Module):
            def init_weights(self):
                nn.init.trunc_normal_(self.pos_embed, std=0.02)
    """))
    child = textwrap.dedent("""
        import torch
        import torch.nn as nn
        from base import Base
        class Child(Base):
            def __init__(self, n, d):
                super().__init__()
                self.pos_embed = nn.Parameter(torch.empty(1, n, d))
                self.init_weights()
    """)
    path = tmp_path / "child.py"
    path.write_text(child)
    found = [f for f in lint_source(child, str(path), ALL).findings if f.code == "RC305"]
    assert found == []


def test_layer_resolution_survives_a_name_bound_to_itself_moved():
    # `E1 = E1.cuda()` (GAN scripts): resolving E1 must not recurse forever
    src = """
        import torch
        from models import *
        E1 = Encoder()
        if torch.cuda.is_available():
            E1 = E1.cuda()
        loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=True)
        opt = torch.optim.Adam(E1.parameters(), lr=1e-4)
        for x in loader:
            opt.zero_grad()
            E1(x).sum().backward()
            opt.step()
    """
    result = lint_source(textwrap.dedent(src), "t.py", ALL)
    assert not result.errors
