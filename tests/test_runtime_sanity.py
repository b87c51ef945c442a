"""Tests for the sanity suite (RT101, RT102, RT114, RT115)."""

from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from recipecheck.runtime.sanity import (  # noqa: E402
    CATALOG,
    SanityResult,
    chance_level,
    check_regularization,
    gradient_check,
    preserve_rng,
    run_sanity,
)

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: intra-op threads only add contention on a small shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


RULES = {  # shared/RULES.md, RT table
    "RT101": ("initial-loss-off", "warning"),
    "RT102": ("gradient-check-failed", "error"),
    "RT114": ("cannot-overfit-tiny-batch", "error"),
    "RT115": ("regularization-not-increasing-loss", "warning"),
}


def blobs(n=64, classes=3, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, dim, generator=g)
    return x, y


def mlp(act=nn.Tanh, seed=1, classes=3):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(5, 32), act(), nn.Dropout(0.2), nn.Linear(32, 32), nn.BatchNorm1d(32), act(), nn.Linear(32, classes)
    )
    with torch.no_grad():
        for p in model.parameters():  # deterministic init without the global RNG
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            elif p is not model[4].weight:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        model[-1].weight.mul_(0.1)  # small last layer: initial loss near chance
    return model


def sgd(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)


def _assert_catalog(result: SanityResult):
    for f in result.findings:
        assert (f.name, f.severity) == RULES[f.code]
        assert f.message and "Fix:" in f.message
        assert f.static_twin == CATALOG[f.code][2]


def test_catalog_matches_rules():
    assert {k: v[:2] for k, v in CATALOG.items()} == RULES


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU])
def test_clean_model_is_quiet_and_user_state_untouched(act):
    x, y = blobs()
    model = mlp(act)
    model.train()
    model[4].eval()  # mixed train/eval flags must survive as they are
    model(x).sum().backward()  # the user's gradients must survive too
    state = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    flags = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    gen = torch.Generator().manual_seed(123)

    result = run_sanity(model, nn.CrossEntropyLoss(), (x, y), optimizer_factory=sgd, generator=gen)

    assert result.findings == [] and result.ok
    d = result.details
    assert d["initial_loss"]["status"] == "ok" and d["initial_loss"]["chance"] == pytest.approx(math.log(3))
    assert d["gradient_check"]["status"] in ("great", "ok")
    assert d["gradient_check"]["checked"] >= 2 * len(list(model.parameters()))
    assert {c["param"] for c in d["gradient_check"]["coordinates"]} == {n for n, _ in model.named_parameters()}
    assert d["overfit"]["status"] == "ok"
    assert d["regularization"]["status"] == "ok"
    # untouched: parameters, buffers, gradients, modes, global RNG
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert [m.training for m in model.modules()] == flags


def test_same_generator_seed_gives_same_details():
    x, y = blobs()
    r1 = run_sanity(mlp(), nn.CrossEntropyLoss(), (x, y), generator=torch.Generator().manual_seed(5), checks=["RT102"])
    r2 = run_sanity(mlp(), nn.CrossEntropyLoss(), (x, y), generator=torch.Generator().manual_seed(5), checks=["RT102"])
    def untimed(details):  # wall-clock durations are the only thing allowed to differ
        return {k: {kk: vv for kk, vv in v.items() if kk != "seconds"} for k, v in details.items()}

    assert untimed(r1.details) == untimed(r2.details)
    assert r1.details["gradient_check"]["checked"] > 0


# ---------------------------------------------------------------- RT101


def test_rt101_fires_on_huge_final_bias():
    x, y = blobs()
    model = mlp()
    with torch.no_grad():
        model[-1].bias.copy_(torch.tensor([8.0, 0.0, 0.0]))
    result = run_sanity(model, nn.CrossEntropyLoss(), (x, y), checks=["RT101"])
    assert result.codes() == ["RT101"]
    _assert_catalog(result)
    f = result.findings[0]
    assert "ln C = ln 3" in f.message and "bias" in f.message and "RC303" in f.message
    assert result.details["initial_loss"]["loss"] > 3


def test_rt101_fires_below_chance_and_on_bce():
    x, y = blobs(classes=2)
    model = nn.Sequential(nn.Linear(5, 1))
    yb = y.float().unsqueeze(1)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    quiet = run_sanity(model, nn.BCEWithLogitsLoss(), (x, yb), checks=["RT101"])
    assert quiet.findings == [] and quiet.details["initial_loss"]["loss"] == pytest.approx(math.log(2))
    with torch.no_grad():  # a "leaky" model that already predicts the labels confidently
        model[0].bias.fill_(-20.0)
    leak = run_sanity(model, nn.BCEWithLogitsLoss(), (x, torch.zeros_like(yb)), checks=["RT101"])
    assert leak.codes() == ["RT101"] and "below chance" in leak.findings[0].message


def test_chance_levels():
    out = torch.zeros(4, 10)
    y = torch.arange(4)
    assert chance_level(nn.CrossEntropyLoss(), out, y)[0] == pytest.approx(math.log(10))
    assert chance_level(F.cross_entropy, out, y, num_classes=5)[0] == pytest.approx(math.log(5))
    assert chance_level(nn.NLLLoss(), out, y)[0] == pytest.approx(math.log(10))
    assert chance_level(nn.BCEWithLogitsLoss(), out, out)[0] == pytest.approx(math.log(2))
    pw = chance_level(nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0)), torch.zeros(4, 1), torch.tensor([[1.0], [1.0], [0.0], [0.0]]))
    assert pw[0] == pytest.approx(2 * math.log(2))
    hinge = nn.MultiMarginLoss()
    value = chance_level(hinge, out, y)[0]
    assert value == pytest.approx(9 / 10) == pytest.approx(float(hinge(out, y)))
    assert chance_level(nn.MSELoss(), out, out) is None


def test_rt101_skipped_for_unknown_loss():
    x, y = blobs()
    result = run_sanity(mlp(), lambda out, t: F.mse_loss(out, F.one_hot(t, 3).float()), (x, y), checks=["RT101"])
    assert result.findings == [] and result.details["initial_loss"]["status"] == "skipped"


# ---------------------------------------------------------------- RT102


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x


class _BrokenSquare(_Square):
    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # forgets the factor 2


class SquareNet(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.l1 = nn.Linear(5, 16)
        self.l2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.l2(self.fn.apply(torch.tanh(self.l1(x))))


def test_rt102_fires_on_broken_autograd_function():
    x, y = blobs()
    torch.manual_seed(0)
    result = run_sanity(SquareNet(_BrokenSquare), nn.CrossEntropyLoss(), (x, y), checks=["RT102"])
    assert result.codes() == ["RT102"]
    _assert_catalog(result)
    f = result.findings[0]
    assert f.where.startswith("l1.")  # the tensors below the broken op
    assert result.details["gradient_check"]["max_rel_error"] > 1e-2
    assert "l2.weight" not in f.message  # above the broken op the gradient is right


def test_rt102_quiet_on_correct_function_and_functional_dropout():
    class FunctionalDropout(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2 = nn.Linear(5, 16), nn.Linear(16, 3)

        def forward(self, x):  # stochastic even with Dropout modules off
            return self.l2(F.dropout(torch.tanh(self.l1(x)), 0.3, training=self.training))

    x, y = blobs()
    torch.manual_seed(0)
    for model in (SquareNet(_Square), FunctionalDropout()):
        rng = torch.get_rng_state()
        findings, details = gradient_check(model, nn.CrossEntropyLoss(), (x, y))
        assert findings == [] and details["status"] in ("great", "ok"), details
        assert torch.equal(torch.get_rng_state(), rng)


def test_rt102_notes_relu_kinks():
    # pre-activations straddling 0 by less than h: the kink is detected, not reported as a failure
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, 1e-7, -1e-7, 0.5]))
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    y = torch.tensor([0, 1])
    findings, details = gradient_check(model, nn.CrossEntropyLoss(), (x, y), coords=8, h=1e-5)
    assert findings == []
    assert details["kinks_possible"] is True


# ---------------------------------------------------------------- RT114


class IgnoresInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)

    def forward(self, x):
        return self.lin(torch.zeros_like(x))


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)

    def forward(self, x):
        return self.lin(x).detach()


def test_rt114_fires_when_output_ignores_input():
    x, y = blobs()
    result = run_sanity(IgnoresInput(), nn.CrossEntropyLoss(), (x, y), checks=["RT114"], steps=100)
    assert result.codes() == ["RT114"]
    _assert_catalog(result)
    assert result.details["overfit"]["best_loss"] > 0.5  # bounded by the label entropy


@pytest.mark.parametrize("kind", ["frozen", "detached"])
def test_rt114_fires_on_frozen_or_detached(kind):
    x, y = blobs()
    model = mlp() if kind == "frozen" else Detached()
    if kind == "frozen":
        model.requires_grad_(False)
    result = run_sanity(model, nn.CrossEntropyLoss(), (x, y), checks=["RT114"], steps=20)
    assert result.codes() == ["RT114"]
    _assert_catalog(result)
    assert ("no trainable parameter" if kind == "frozen" else "does not depend") in result.findings[0].message


def test_rt114_quiet_and_uses_zero_weight_decay():
    x, y = blobs()
    seen = {}

    def factory(params):
        opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.5)
        seen["opt"] = opt
        return opt

    result = run_sanity(mlp(nn.ReLU), nn.CrossEntropyLoss(), (x, y), optimizer_factory=factory, checks=["RT114"])
    assert result.findings == []
    assert result.details["overfit"]["examples"] == 20
    assert all(g["weight_decay"] == 0 for g in seen["opt"].param_groups)


# ---------------------------------------------------------------- RT115


def l2(model):
    return sum(p.pow(2).sum() for p in model.parameters())


def test_rt115_quiet_with_penalty_and_with_weight_decay():
    x, y = blobs()
    r = run_sanity(mlp(), nn.CrossEntropyLoss(), (x, y), regularizer=l2, checks=["RT115"])
    assert r.findings == [] and r.details["regularization"]["status"] == "ok"
    r = run_sanity(mlp(), nn.CrossEntropyLoss(), (x, y), optimizer_factory=sgd, checks=["RT115"])
    assert r.findings == [] and r.details["regularization"]["mode"] == "weight_decay"
    for factory in (lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=1e-4), lambda p: torch.optim.AdamW(p, lr=1e-3)):
        r = run_sanity(mlp(), nn.CrossEntropyLoss(), (x, y), optimizer_factory=factory, checks=["RT115"])
        assert r.findings == [] and r.details["regularization"]["status"] == "ok"
    r = run_sanity(mlp(), nn.CrossEntropyLoss(), (x, y), optimizer_factory=lambda p: torch.optim.SGD(p, lr=0.1), checks=["RT115"])
    assert r.findings == [] and r.details["regularization"]["status"] == "skipped"


@pytest.mark.parametrize("bug", ["negative", "detached"])
def test_rt115_fires_on_broken_penalty(bug):
    x, y = blobs()
    reg = (lambda m: -l2(m)) if bug == "negative" else (lambda m: l2(m).detach())
    r = run_sanity(mlp(), nn.CrossEntropyLoss(), (x, y), regularizer=reg, checks=["RT115"])
    assert r.codes() == ["RT115"]
    _assert_catalog(r)
    assert ("negative" if bug == "negative" else "no gradient") in r.findings[0].message


def test_rt115_fires_when_optimizer_ignores_weight_decay():
    class NoDecaySGD(torch.optim.Optimizer):  # accepts weight_decay but never applies it
        def __init__(self, params, lr=0.1, weight_decay=0.0):
            super().__init__(params, dict(lr=lr, weight_decay=weight_decay))

        @torch.no_grad()
        def step(self, closure=None):
            for g in self.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-g["lr"])

    x, y = blobs()
    findings, details = check_regularization(mlp(), nn.CrossEntropyLoss(), (x, y), optimizer_factory=lambda p: NoDecaySGD(p, weight_decay=1e-3))
    assert [f.code for f in findings] == ["RT115"] and details["status"] == "fail"
    assert "NoDecaySGD" in findings[0].message


def test_crashing_check_is_recorded_not_raised():
    x, y = blobs()

    def bad_loss(out, t):
        raise RuntimeError("boom")

    r = run_sanity(mlp(), bad_loss, (x, y), checks=["RT101", "RT114"])
    assert r.findings == []
    assert r.details["initial_loss"]["status"] == "crashed" and "boom" in r.details["initial_loss"]["error"]
    with pytest.raises(ValueError):
        run_sanity(mlp(), bad_loss, (x, y), checks=["RT999"])


def test_preserve_rng_restores_state():
    before = torch.get_rng_state()
    with preserve_rng(7):
        a = torch.rand(3)
    with preserve_rng(7):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------- LR range test


def _blob_batches(n=1024, bs=32):
    x, y = blobs(n=n)
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, n, bs)]


def test_lr_range_test_suggests_a_sane_lr_and_leaves_user_state_untouched():
    from recipecheck.runtime.lr_finder import lr_range_test
    from recipecheck.runtime.report import read_report, write_report

    model = mlp(nn.ReLU)
    state = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    result = lr_range_test(
        model, nn.CrossEntropyLoss(), _blob_batches(), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)
    )
    assert 1e-3 <= result.suggested_lr <= 1
    lo, hi = result.steepest_region
    assert lo <= result.suggested_lr <= hi <= result.min_loss_lr
    assert result.lrs[0] == pytest.approx(1e-7)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert max(ratios) == pytest.approx(min(ratios))  # exponential schedule
    assert ratios[0] == pytest.approx((10 / 1e-7) ** (1 / 99))
    assert len(result.losses) == len(result.lrs) == len(result.raw_losses)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # serializable into the report's "lr_range_test" series
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        write_report(d, [], {"lr_range_test": result.to_series()}, {})
        back = read_report(d)["series"]["lr_range_test"]
    assert back["suggested_lr"] == result.suggested_lr and len(back["lr"]) == len(result.lrs)
    assert "suggested lr" in result.advice()


def test_lr_range_test_stops_at_divergence():
    from recipecheck.runtime.lr_finder import lr_range_test

    result = lr_range_test(
        mlp(nn.ReLU), nn.CrossEntropyLoss(), _blob_batches(n=256), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        start_lr=1e-4, end_lr=1e4, num_iters=60,
    )
    assert result.diverged_at is not None and len(result.lrs) < 60
    assert result.lrs[-1] == result.diverged_at
    assert result.suggested_lr is not None and result.suggested_lr < result.diverged_at


def test_lr_range_test_inputs_single_batch_iterator_and_shuffling_loader():
    from torch.utils.data import DataLoader, TensorDataset

    from recipecheck.runtime.lr_finder import lr_range_test, suggest_lr

    x, y = blobs(n=128)
    adam = lambda p: torch.optim.Adam(p)  # noqa: E731
    r1 = lr_range_test(mlp(), nn.CrossEntropyLoss(), (x, y), adam, num_iters=30)
    assert len(r1.lrs) == 30  # one batch, reused
    r2 = lr_range_test(mlp(), nn.CrossEntropyLoss(), iter([(x[:64], y[:64]), (x[64:], y[64:])]), adam, num_iters=30)
    assert len(r2.lrs) == 2  # a one-shot iterator is not restarted
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)  # shuffling draws from the global RNG
    model = mlp()
    rng = torch.get_rng_state()
    r3 = lr_range_test(model, nn.CrossEntropyLoss(), loader, adam, num_iters=20)
    assert len(r3.lrs) == 20 and torch.equal(torch.get_rng_state(), rng)
    assert suggest_lr([1e-3, 1e-2], [1.0, 0.5]) == (None, None, None)
    with pytest.raises(ValueError):
        lr_range_test(mlp(), nn.CrossEntropyLoss(), (x, y), adam, start_lr=1, end_lr=0.1)


def test_sanity_and_lr_test_are_invisible_to_an_attached_monitor():
    from recipecheck.runtime.lr_finder import lr_range_test
    from recipecheck.runtime.monitor import Monitor

    x, y = blobs()
    model, crit = mlp(nn.ReLU), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(model, opt, criterion=crit, report=None, summary=False, global_hooks=True)
    mon.attach()
    try:
        hooks = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in list(model.modules()) + [crit]]
        result = run_sanity(model, crit, (x, y), optimizer_factory=sgd)
        lr_range_test(model, crit, (x, y), sgd, num_iters=20)
        assert result.findings == []
        assert mon.step == 0 and mon.optimizers == [opt]
        assert [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in list(model.modules()) + [crit]] == hooks
    finally:
        mon.close()
    assert mon.step == 0
    assert not mon.series.to_json().get("loss", {}).get("value")


def test_clean_copy_drops_user_and_recipecheck_hooks_keeps_torch_ones():
    """The suite's forward passes must not reach the user's hooks (logging, counters); hooks that
    torch installs as part of the model's function (weight norm, pruning) stay."""
    from recipecheck.runtime.sanity import clean_copy, count_user_hooks

    calls = []
    model = nn.Sequential(nn.Linear(5, 3), nn.Linear(3, 3))
    model[0].register_forward_pre_hook(lambda mod, args: calls.append(1))
    model.register_forward_hook(_recipecheck_hook)  # defined in a recipecheck module: dropped
    model[1].register_forward_pre_hook(_TorchMask())  # stands for a pruning/weight-norm hook object
    assert count_user_hooks(model) == 1
    copy_ = clean_copy(model)
    x = torch.ones(2, 5)
    assert torch.equal(copy_(x), model(x))  # the torch-installed hook still applies in the copy
    assert len(calls) == 1  # only the original's forward reached the user's hook
    assert len(copy_._forward_hooks) == 0 and len(model._forward_hooks) == 1
    assert len(copy_[0]._forward_pre_hooks) == 0 and len(copy_[1]._forward_pre_hooks) == 1
    kept = clean_copy(model, keep_user_hooks=True)
    kept(x)
    assert len(calls) == 2


def _recipecheck_hook(module, args, output):
    return None


_recipecheck_hook.__module__ = "recipecheck.runtime.monitor"


class _TorchMask:
    """A forward pre-hook object defined by torch (as pruning and weight norm are): it zeroes the
    input of the module, which changes the output, so the test sees whether it is kept."""

    def __call__(self, module, args):
        return (args[0] * 0,)


_TorchMask.__module__ = "torch.nn.utils.prune"


# ---------------------------------------------------------------- RT102 cost bounds (issue 10 item 9)


def _deep_convnet(blocks=12):
    """MobileNet-shaped: many conv + BatchNorm blocks, so many parameter tensors."""
    layers, c = [], 3
    for i in range(blocks):
        layers += [nn.Conv2d(c, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()]
        c = 8
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def test_gradient_check_samples_tensors_and_examples():
    torch.manual_seed(0)
    model = _deep_convnet()
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 10, (32,))
    n_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    assert n_tensors > 24
    seen = []
    findings, d = gradient_check(model, nn.CrossEntropyLoss(), (x, y), progress=lambda done, total: seen.append((done, total)))
    assert d["examples"] == 4 and d["parameter_tensors"] == n_tensors and d["tensors_checked"] == 24
    checked = {c["param"] for c in d["coordinates"]}
    names = [n for n, p in model.named_parameters()]
    assert names[0] in checked and names[-1] in checked  # both ends of the depth
    assert seen[-1] == (d["checked"], d["planned"]) and [s[0] for s in seen] == list(range(1, d["checked"] + 1))
    assert not d["budget_exhausted"] and d["status"] in ("great", "ok", "warn") and findings == []


def test_gradient_check_stops_at_its_time_budget_and_still_fires():
    class Broken(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3  # wrong: should be 2

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            return Broken.apply(self.fc(x))

    x, y = blobs()
    findings, d = gradient_check(M(), nn.CrossEntropyLoss(), (x, y), time_budget=0.0)
    assert d["budget_exhausted"] and d["checked"] == 1 < d["planned"]
    assert [f.code for f in findings] == ["RT102"]  # the coordinates checked so far decide


def test_overfit_out_of_time_is_inconclusive_not_a_finding():
    from recipecheck.runtime.sanity import check_overfit

    x, y = blobs()
    seen = []
    findings, d = check_overfit(mlp(), nn.CrossEntropyLoss(), (x, y), optimizer_factory=sgd, time_budget=0.0,
                                progress=lambda done, total: seen.append((done, total)))
    assert findings == [] and d["status"] == "inconclusive" and d["budget_exhausted"] and d["steps"] == 1
    assert seen == [(0, 200), (1, 200)]
    findings, d = check_overfit(mlp(), nn.CrossEntropyLoss(), (x, y), optimizer_factory=sgd, time_budget=600.0)
    assert findings == [] and d["status"] == "ok"


def test_lr_range_test_time_budget():
    from recipecheck.runtime.lr_finder import lr_range_test

    x, y = blobs()
    res = lr_range_test(mlp(), nn.CrossEntropyLoss(), (x, y), sgd, num_iters=50, time_budget=0.0)
    assert res.stopped_early and len(res.lrs) == 1 and res.suggested_lr is None
    assert res.to_series()["stopped_early"] is True and "inconclusive" in res.advice()
    full = lr_range_test(mlp(), nn.CrossEntropyLoss(), (x, y), sgd, num_iters=50, time_budget=600.0)
    assert not full.stopped_early and len(full.lrs) > 10


def test_rt102_quiet_on_a_functional_relu_kink_within_h():
    """F.relu (MobileNet, many real models) is invisible to the kink recorder: a pre-activation
    within h of 0 made the healthy pytorch-cifar MobileNet fail the gradient check. A smaller h
    resolves the kink; a wrong backward stays wrong for any h (the broken-Function test)."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 1)
            with torch.no_grad():
                self.fc.weight.fill_(1.0)
                self.fc.bias.fill_(3e-6 - 1.0)  # pre-activation 3e-6 for x = 1: within h = 1e-5

        def forward(self, x):
            return F.relu(self.fc(x))

    x, y = torch.ones(1, 1), -torch.ones(1, 1)
    findings, d = gradient_check(M(), nn.MSELoss(), (x, y), h=1e-5)
    assert findings == [] and d["status"] in ("great", "ok"), d
    assert d["coordinates"][0]["rel_error"] < 1e-4  # the smaller h resolved the kink


def test_rt102_functional_relu_allows_kink_sized_errors_but_not_wrong_gradients():
    class Net(nn.Module):
        def __init__(self, broken=False):
            super().__init__()
            self.a, self.b, self.broken = nn.Linear(5, 16), nn.Linear(16, 3), broken

        def forward(self, x):
            h = F.relu(self.a(x))
            if self.broken:  # wrong backward behind a functional ReLU: still an error
                h = _Twice.apply(h)
            return self.b(h)

    torch.manual_seed(0)
    x, y = blobs()
    findings, d = gradient_check(Net(), nn.CrossEntropyLoss(), (x, y))
    assert findings == [] and d["kinks_possible"] and d.get("functional_kinks")
    findings, d = gradient_check(Net(broken=True), nn.CrossEntropyLoss(), (x, y))
    assert [f.code for f in findings] == ["RT102"]


class _Twice(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 3
