"""Reference optimizers: against hand-written formulas step by step, and against torch.optim."""

from __future__ import annotations

import copy
import math

import pytest

torch = pytest.importorskip("torch")
from torch.testing import assert_close  # noqa: E402

from recipecheck.runtime.reference import optimizers as ro  # noqa: E402

STEPS = 120


# ---------------------------------------------------------------------------------------------
# random problems
# ---------------------------------------------------------------------------------------------


def _problem(seed: int):
    """Initial parameters (several shapes) and a loss: random convex quadratic + logistic term.

    The quadratic couples all parameters through one SPD matrix; the logistic part is a tiny
    linear classifier built from the first two tensors, so gradients are non-linear in x.
    """
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (4,), (5,)]
    init = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    n = sum(math.prod(s) for s in shapes)
    q = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = q @ q.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    xs = torch.randn(16, 3, generator=g, dtype=torch.float64)
    ys = (torch.rand(16, 4, generator=g, dtype=torch.float64) > 0.5).to(torch.float64)

    def loss_fn(params):
        flat = torch.cat([p.reshape(-1) for p in params])
        quad = 0.5 * flat @ a @ flat + b @ flat
        logits = xs @ params[0].T + params[1]
        # BCE-with-logits written out: torch's fused kernel is ~100x slower on tiny CPU inputs
        logistic = (torch.nn.functional.softplus(logits) - ys * logits).mean()
        return quad + logistic

    return init, loss_fn


def _trajectory(make_opt, seed: int, steps: int = STEPS, lr_at=None):
    init, loss_fn = _problem(seed)
    params = [p.clone().requires_grad_(True) for p in init]
    opt = make_opt(params)
    traj = []
    for t in range(steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(t)
        opt.zero_grad()
        loss_fn(params).backward()
        opt.step()
        traj.append([p.detach().clone() for p in params])
    return traj


def _assert_same_trajectory(ours, theirs):
    assert len(ours) == len(theirs) >= 100
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for pa, pb in zip(a, b):
            assert_close(pa, pb, rtol=1e-10, atol=1e-12, msg=lambda m, t=t: f"step {t}: {m}")


# ---------------------------------------------------------------------------------------------
# equivalence with torch.optim over >= 100 steps, float64
# ---------------------------------------------------------------------------------------------

TORCH_CASES = [
    ("sgd", ro.SGD, torch.optim.SGD, dict(lr=0.05)),
    ("sgd-wd", ro.SGD, torch.optim.SGD, dict(lr=0.05, weight_decay=0.01)),
    ("sgd-momentum", ro.SGD, torch.optim.SGD, dict(lr=0.02, momentum=0.9)),
    ("sgd-momentum-wd", ro.SGD, torch.optim.SGD, dict(lr=0.02, momentum=0.9, weight_decay=0.05)),
    ("sgd-momentum-dampening", ro.SGD, torch.optim.SGD, dict(lr=0.02, momentum=0.8, dampening=0.3)),
    ("sgd-nesterov", ro.SGD, torch.optim.SGD, dict(lr=0.02, momentum=0.9, nesterov=True)),
    ("sgd-nesterov-wd", ro.SGD, torch.optim.SGD,
     dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("adagrad", ro.Adagrad, torch.optim.Adagrad, dict(lr=0.1)),
    ("adagrad-wd", ro.Adagrad, torch.optim.Adagrad, dict(lr=0.1, weight_decay=0.05)),
    ("adagrad-decay-init", ro.Adagrad, torch.optim.Adagrad,
     dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("rmsprop", ro.RMSprop, torch.optim.RMSprop, dict(lr=0.01)),
    ("rmsprop-wd", ro.RMSprop, torch.optim.RMSprop, dict(lr=0.01, weight_decay=0.05)),
    ("rmsprop-momentum-centered", ro.RMSprop, torch.optim.RMSprop,
     dict(lr=0.005, momentum=0.5, centered=True, alpha=0.9)),
    ("adam", ro.Adam, torch.optim.Adam, dict(lr=0.01)),
    ("adam-betas", ro.Adam, torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("adam-l2", ro.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    ("adamL2-class", ro.AdamL2, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    ("adamw", ro.AdamW, torch.optim.AdamW, dict(lr=0.01)),
    ("adamw-wd", ro.AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.3)),
    ("adamw-nowd", ro.AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.0)),
]


@pytest.mark.parametrize(
    "seed,ours,theirs,kwargs",
    [(i, *c[1:]) for i, c in enumerate(TORCH_CASES)],  # a different random problem per case
    ids=[c[0] for c in TORCH_CASES],
)
def test_matches_torch_optim(seed, ours, theirs, kwargs):
    mine = _trajectory(lambda ps: ours(ps, **kwargs), seed)
    ref = _trajectory(lambda ps: theirs(ps, **kwargs, foreach=False), seed)
    _assert_same_trajectory(mine, ref)
    # the run must actually move the parameters, else the comparison proves nothing
    init, _ = _problem(seed)
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(mine[-1], init))


def test_matches_torch_with_param_groups_and_lr_changes():
    """Per-group options and an LR changed between steps (as a scheduler does) are honoured."""

    def make(cls):
        def build(ps):
            return cls([{"params": ps[:1], "lr": 0.02}, {"params": ps[1:], "weight_decay": 0.1}],
                       lr=0.01, momentum=0.9, nesterov=True)
        return build

    sched = lambda t: 0.02 * 0.97**t  # noqa: E731
    _assert_same_trajectory(
        _trajectory(make(ro.SGD), 3, lr_at=sched), _trajectory(make(torch.optim.SGD), 3, lr_at=sched)
    )


def test_adam_l2_and_adamw_differ():
    """Same weight_decay, different algorithms: the trajectories must not coincide."""
    l2 = _trajectory(lambda ps: ro.AdamL2(ps, lr=0.01, weight_decay=0.3), 0)
    w = _trajectory(lambda ps: ro.AdamW(ps, lr=0.01, weight_decay=0.3), 0)
    assert max((a - b).abs().max().item() for a, b in zip(l2[-1], w[-1])) > 1e-3


# ---------------------------------------------------------------------------------------------
# hand-written formulas, step by step, on f(x) = 0.5 * sum(c * x**2)  (grad = c * x)
# ---------------------------------------------------------------------------------------------

C = [1.0, 3.0, 0.2]
X0 = [1.0, -2.0, 0.5]


def _run_formula(make_opt, steps=6):
    """Trajectory of our optimizer on the separable quadratic, as Python floats."""
    x = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(C, dtype=torch.float64)
    opt = make_opt([x])
    out = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (c * x * x).sum()).backward()
        opt.step()
        out.append(x.detach().tolist())
    return out


def _check(ours, expected):
    for t, (a, b) in enumerate(zip(ours, expected)):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-14), f"step {t}"


def test_sgd_formula():
    lr, wd = 0.1, 0.01
    xs, exp = list(X0), []
    for _ in range(6):
        xs = [x - lr * (c * x + wd * x) for x, c in zip(xs, C)]
        exp.append(xs)
    _check(_run_formula(lambda p: ro.SGD(p, lr=lr, weight_decay=wd)), exp)


def test_sgd_momentum_formula():
    lr, rho = 0.1, 0.9
    xs, bs, exp = list(X0), [0.0] * 3, []
    for _ in range(6):
        bs = [rho * b + c * x for b, x, c in zip(bs, xs, C)]
        xs = [x - lr * b for x, b in zip(xs, bs)]
        exp.append(xs)
    _check(_run_formula(lambda p: ro.SGD(p, lr=lr, momentum=rho)), exp)


def test_sgd_velocity_formula():
    lr, rho = 0.1, 0.9
    xs, vs, exp = list(X0), [0.0] * 3, []
    for _ in range(6):
        vs = [rho * v - lr * c * x for v, x, c in zip(vs, xs, C)]
        xs = [x + v for x, v in zip(xs, vs)]
        exp.append(xs)
    _check(_run_formula(lambda p: ro.SGDVelocity(p, lr=lr, momentum=rho)), exp)


def test_nesterov_formula_and_lookahead_equivalence():
    """Torch's form equals Sutskever's look-ahead form in the variable y = x + rho*v."""
    lr, rho = 0.1, 0.9
    # the change-of-variables form, written out
    ys, bs, exp = list(X0), [0.0] * 3, []
    for _ in range(6):
        gs = [c * y for y, c in zip(ys, C)]
        bs = [rho * b + g for b, g in zip(bs, gs)]
        ys = [y - lr * (g + rho * b) for y, g, b in zip(ys, gs, bs)]
        exp.append(ys)
    ours = _run_formula(lambda p: ro.SGD(p, lr=lr, momentum=rho, nesterov=True))
    _check(ours, exp)
    # Sutskever et al.: gradient at the look-ahead point x + rho*v
    xs, vs, look = list(X0), [0.0] * 3, []
    for _ in range(6):
        vs = [rho * v - lr * c * (x + rho * v) for x, v, c in zip(xs, vs, C)]
        xs = [x + v for x, v in zip(xs, vs)]
        look.append([x + rho * v for x, v in zip(xs, vs)])
    _check(ours, look)


def test_adagrad_formula():
    lr, eps = 0.5, 1e-10
    xs, ss, exp = list(X0), [0.0] * 3, []
    for _ in range(6):
        gs = [c * x for x, c in zip(xs, C)]
        ss = [s + g * g for s, g in zip(ss, gs)]
        xs = [x - lr * g / (math.sqrt(s) + eps) for x, g, s in zip(xs, gs, ss)]
        exp.append(xs)
    _check(_run_formula(lambda p: ro.Adagrad(p, lr=lr)), exp)


def test_rmsprop_formula():
    lr, alpha, eps = 0.01, 0.9, 1e-8
    xs, rs, exp = list(X0), [0.0] * 3, []
    for _ in range(6):
        gs = [c * x for x, c in zip(xs, C)]
        rs = [alpha * r + (1 - alpha) * g * g for r, g in zip(rs, gs)]
        xs = [x - lr * g / (math.sqrt(r) + eps) for x, g, r in zip(xs, gs, rs)]
        exp.append(xs)
    _check(_run_formula(lambda p: ro.RMSprop(p, lr=lr, alpha=alpha)), exp)


def _adam_formula(lr, b1, b2, eps, wd=0.0, bias_correction=True):
    xs, ms, vs, exp = list(X0), [0.0] * 3, [0.0] * 3, []
    for t in range(1, 7):
        gs = [c * x + wd * x for x, c in zip(xs, C)]  # L2: decay enters the gradient
        ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, gs)]
        if bias_correction:
            mh = [m / (1 - b1**t) for m in ms]
            vh = [v / (1 - b2**t) for v in vs]
        else:
            mh, vh = ms, vs
        xs = [x - lr * m / (math.sqrt(v) + eps) for x, m, v in zip(xs, mh, vh)]
        exp.append(xs)
    return exp


def test_adam_formula():
    exp = _adam_formula(0.01, 0.9, 0.999, 1e-8)
    _check(_run_formula(lambda p: ro.Adam(p, lr=0.01)), exp)


def test_adam_l2_formula():
    exp = _adam_formula(0.01, 0.9, 0.999, 1e-8, wd=0.1)
    _check(_run_formula(lambda p: ro.AdamL2(p, lr=0.01, weight_decay=0.1)), exp)


def test_adam_no_bias_correction_formula():
    exp = _adam_formula(0.01, 0.9, 0.999, 1e-8, bias_correction=False)
    _check(_run_formula(lambda p: ro.Adam(p, lr=0.01, bias_correction=False)), exp)


def test_adamw_formula():
    """The gradient is computed before the step at the old x; decay multiplies x first."""
    lr, wd, b1, b2, eps = 0.01, 0.5, 0.9, 0.999, 1e-8
    xs, ms, vs, exp = list(X0), [0.0] * 3, [0.0] * 3, []
    for t in range(1, 7):
        gs = [c * x for x, c in zip(xs, C)]
        xs = [x * (1 - lr * wd) for x in xs]
        ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, gs)]
        xs = [x - lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
              for x, m, v in zip(xs, ms, vs)]
        exp.append(xs)
    _check(_run_formula(lambda p: ro.AdamW(p, lr=lr, weight_decay=wd)), exp)


# ---------------------------------------------------------------------------------------------
# properties the rules and experiments rely on
# ---------------------------------------------------------------------------------------------


def test_momentum_forms_identical_for_constant_lr():
    a = _trajectory(lambda ps: ro.SGD(ps, lr=0.02, momentum=0.9), 5)
    b = _trajectory(lambda ps: ro.SGDVelocity(ps, lr=0.02, momentum=0.9), 5)
    _assert_same_trajectory(a, b)


def test_momentum_forms_differ_when_lr_changes():
    """The two forms are only equivalent for constant LR: a decaying LR separates them."""
    sched = lambda t: 0.02 if t < 30 else 0.002  # noqa: E731
    a = _trajectory(lambda ps: ro.SGD(ps, lr=0.02, momentum=0.9), 5, lr_at=sched)
    b = _trajectory(lambda ps: ro.SGDVelocity(ps, lr=0.02, momentum=0.9), 5, lr_at=sched)
    assert max((x - y).abs().max().item() for x, y in zip(a[40], b[40])) > 1e-4


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.99, 0.9), (0.9, 0.99)])
def test_adam_without_bias_correction_first_step(betas):
    """Without correction the first step is (1-beta1)/sqrt(1-beta2) times the corrected one.

    With the default betas that is ~3.16x too large; with beta1 large relative to beta2 it is
    far too small. With correction the first step is ~lr per coordinate (sign of the gradient).
    """
    b1, b2 = betas
    lr = 1e-3
    g = torch.tensor([0.3, -2.0, 5.0, 1e-2], dtype=torch.float64)
    steps = {}
    for bc in (True, False):
        x = torch.zeros(4, dtype=torch.float64)
        ro.adam_update(x, g, {}, lr=lr, beta1=b1, beta2=b2, eps=1e-12, bias_correction=bc)
        steps[bc] = -x
    assert_close(steps[True], lr * torch.sign(g), rtol=1e-6, atol=0)
    ratio = steps[False] / steps[True]
    assert_close(ratio, torch.full_like(g, (1 - b1) / math.sqrt(1 - b2)), rtol=1e-6, atol=0)


def test_adamw_decay_is_independent_of_gradient_scale():
    """With zero gradient AdamW still shrinks x by (1 - lr*wd); Adam+L2 moves x by ~lr only."""
    x_w = torch.full((3,), 10.0, dtype=torch.float64)
    x_l2 = x_w.clone()
    sw, sl2 = {}, {}
    zero = torch.zeros(3, dtype=torch.float64)
    for _ in range(10):
        ro.adam_update(x_w, zero, sw, lr=0.01, weight_decay=0.5, decoupled_weight_decay=True)
        ro.adam_update(x_l2, zero, sl2, lr=0.01, weight_decay=0.5)
    assert_close(x_w, torch.full((3,), 10.0 * (1 - 0.005) ** 10, dtype=torch.float64))
    # L2's decay gradient is normalized away: each step is ~lr regardless of wd*x = 5
    assert_close(x_l2, torch.full((3,), 10.0 - 10 * 0.01, dtype=torch.float64), rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "update,kwargs",
    [
        (ro.sgd_update, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
        (ro.sgd_velocity_update, dict(lr=0.1, momentum=0.9)),
        (ro.adagrad_update, dict(lr=0.1, lr_decay=0.1)),
        (ro.rmsprop_update, dict(lr=0.01, momentum=0.5, centered=True)),
        (ro.adam_update, dict(lr=0.1, weight_decay=0.1, decoupled_weight_decay=True)),
    ],
)
def test_update_functions_keep_all_memory_in_state(update, kwargs):
    """Replaying from a copy of (param, state) after step 1 reproduces steps 2-3 exactly."""
    grads = [randn_like_seed(s) for s in range(3)]
    x = torch.ones(4, dtype=torch.float64)
    state: dict = {}
    update(x, grads[0], state, **kwargs)
    x_copy, state_copy = x.clone(), copy.deepcopy(state)
    for g in grads[1:]:
        update(x, g, state, **kwargs)
    for g in grads[1:]:
        update(x_copy, g, state_copy, **kwargs)
    assert_close(x, x_copy, rtol=0, atol=0)
    assert not torch.equal(x, torch.ones(4, dtype=torch.float64))
    # state tensors are allocated like the parameter: on the meta device nothing is computed,
    # so this fails if any state or intermediate were created on a hard-coded device
    m = torch.ones(4, device="meta")
    ms: dict = {}
    update(m, torch.ones(4, device="meta"), ms, **kwargs)
    update(m, torch.ones(4, device="meta"), ms, **kwargs)
    assert all(v.device.type == "meta" for v in ms.values() if isinstance(v, torch.Tensor))


def randn_like_seed(seed):
    return torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_optimizer_state_dict_roundtrip():
    """A reloaded optimizer continues the identical trajectory (state is checkpointable)."""
    init, loss_fn = _problem(7)
    p1 = [p.clone().requires_grad_(True) for p in init]
    o1 = ro.Adam(p1, lr=0.01)
    for _ in range(5):
        o1.zero_grad()
        loss_fn(p1).backward()
        o1.step()
    p2 = [p.detach().clone().requires_grad_(True) for p in p1]
    o2 = ro.Adam(p2, lr=0.01)
    # deepcopy: state_dict() returns references to the live buffers, as torch's does
    o2.load_state_dict(copy.deepcopy(o1.state_dict()))
    for ps, o in ((p1, o1), (p2, o2)):
        for _ in range(5):
            o.zero_grad()
            loss_fn(ps).backward()
            o.step()
    for a, b in zip(p1, p2):
        assert_close(a, b)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda p: ro.SGD(p, lr=-0.1), "lr must be >= 0"),
        (lambda p: ro.SGD(p, lr=0.1, momentum=1.5), r"momentum must be in \[0, 1\)"),
        (lambda p: ro.SGD(p, lr=0.1, nesterov=True), "nesterov=True requires momentum > 0"),
        (lambda p: ro.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening = 0"),
        (lambda p: ro.SGD(p, lr=0.1, weight_decay=-1), "weight_decay must be >= 0"),
        (lambda p: ro.SGD(p, lr=float("nan")), "lr must be >= 0"),
        (lambda p: ro.Adam(p, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\)"),
        (lambda p: ro.Adam(p, betas=(-0.1, 0.9)), r"betas\[0\] must be in \[0, 1\)"),
        (lambda p: ro.Adam(p, betas=(0.9,)), "betas must be a pair"),
        (lambda p: ro.AdamW(p, eps=-1e-8), "eps must be >= 0"),
        (lambda p: ro.RMSprop(p, alpha=1.0), r"alpha must be in \[0, 1\)"),
        (lambda p: ro.Adagrad(p, lr_decay=-1), "lr_decay must be >= 0"),
        (lambda p: ro.SGDVelocity(p, momentum=-0.5), "momentum must be in"),
        (lambda p: ro.Adagrad(p, lr="0.1"), "lr must be a real number"),
    ],
)
def test_hyperparameter_validation(build, match):
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=match):
        build(p)


def test_params_without_grad_are_skipped_and_closure_returns_loss():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = ro.SGD([a, b], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (a * a).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(2.0)
    assert_close(a.detach(), torch.zeros(2))
    assert_close(b.detach(), torch.ones(2))
