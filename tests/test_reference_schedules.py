"""Reference LR schedules: against their formulas and against torch's schedulers."""

from __future__ import annotations

import math
import random
import warnings
from functools import partial

import pytest

torch = pytest.importorskip("torch")
from torch.optim import lr_scheduler as lrs  # noqa: E402
from torch.testing import assert_close  # noqa: E402

from recipecheck.runtime.reference import schedules as rs  # noqa: E402

LR0 = 0.1


def _opt(lr=LR0, momentum=0.0, groups=1):
    params = [torch.zeros(1, requires_grad=True) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)],
                           lr=lr, momentum=momentum)


def _lr_sequence(make_sched, n, *, lr=LR0, groups=1, momentum=0.0):
    """LR of every group at each of n steps, read before the optimizer step that uses it."""
    opt = _opt(lr, momentum, groups)
    sched = make_sched(opt)
    seq = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns when get_lr is read in odd orders
        for _ in range(n):
            seq.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
    return torch.tensor(seq, dtype=torch.float64)


def _assert_matches_torch(fn, torch_sched, n, **kw):
    """Our function (through FunctionScheduler) == torch's scheduler over the full horizon."""
    ours = _lr_sequence(lambda o: rs.FunctionScheduler(o, fn), n, **kw)
    theirs = _lr_sequence(torch_sched, n, **kw)
    assert_close(ours, theirs, rtol=1e-12, atol=1e-15)
    # the pure function gives the same numbers directly
    direct = torch.tensor([[fn(t, LR0 * (i + 1)) for i in range(ours.shape[1])] for t in range(n)],
                          dtype=torch.float64)
    assert_close(ours, direct, rtol=1e-12, atol=1e-15)
    return ours


# ---------------------------------------------------------------------------------------------
# formulas
# ---------------------------------------------------------------------------------------------


def test_constant():
    assert [rs.constant(t, 0.3) for t in (0, 5, 1000)] == [0.3, 0.3, 0.3]


def test_step_decay_formula():
    got = [rs.step_decay(t, 1.0, step_size=3, gamma=0.5) for t in range(8)]
    assert got == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_multistep_formula():
    got = [rs.multistep_decay(t, 1.0, [2, 5], gamma=0.1) for t in range(7)]
    assert got == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_exponential_formula():
    for t in range(0, 50, 7):
        assert rs.exponential_decay(t, 2.0, 0.03) == pytest.approx(2.0 * math.exp(-0.03 * t))


def test_inverse_time_formula():
    assert [rs.inverse_time_decay(t, 1.0, 0.5) for t in range(4)] == pytest.approx(
        [1, 1 / 1.5, 1 / 2, 1 / 2.5])


def test_cosine_formula():
    T = 10
    assert rs.cosine_decay(0, 1.0, T) == pytest.approx(1.0)
    assert rs.cosine_decay(5, 1.0, T) == pytest.approx(0.5)
    assert rs.cosine_decay(10, 1.0, T, eta_min=0.1) == pytest.approx(0.1)
    assert rs.cosine_decay(25, 1.0, T, eta_min=0.1) == pytest.approx(0.1)  # stays at the floor
    assert rs.cosine_decay(3, 1.0, T, 0.2) == pytest.approx(0.2 + 0.8 * (1 + math.cos(0.3 * math.pi)) / 2)


def test_linear_formula():
    got = [rs.linear_decay(t, 1.0, 4) for t in range(6)]
    assert got == pytest.approx([1, 0.75, 0.5, 0.25, 0, 0])


def test_inverse_sqrt_formula():
    got = [rs.inverse_sqrt_decay(t, 1.0, timescale=4) for t in (0, 4, 12, 60)]
    assert got == pytest.approx([1, 1 / math.sqrt(2), 0.5, 0.25])


def test_warmup_formula_and_composition():
    base = partial(rs.cosine_decay, T_max=10)
    fn = rs.with_warmup(base, warmup_steps=4)
    got = [fn(t, 1.0) for t in range(16)]
    assert got[:4] == pytest.approx([0, 0.25, 0.5, 0.75])  # linear ramp to base(0)
    assert got[4:] == pytest.approx([base(t, 1.0) for t in range(12)])  # then the shifted schedule
    # warmup with a start factor, composed with step decay
    fn2 = rs.with_warmup(partial(rs.step_decay, step_size=2, gamma=0.5), 2, start_factor=0.5)
    assert [fn2(t, 1.0) for t in range(6)] == pytest.approx([0.5, 0.75, 1, 1, 0.5, 0.5])


def test_cyclic_formula():
    # triangular: up 2 steps, down 2 steps, between 0.1 and 0.5
    tri = [rs.cyclic(t, 0.1, 0.5, step_size_up=2) for t in range(9)]
    assert tri == pytest.approx([0.1, 0.3, 0.5, 0.3, 0.1, 0.3, 0.5, 0.3, 0.1])
    # triangular2 halves the amplitude each cycle
    tri2 = [rs.cyclic(t, 0.1, 0.5, step_size_up=2, mode="triangular2") for t in (2, 6, 10)]
    assert tri2 == pytest.approx([0.5, 0.3, 0.2])
    # exp_range scales the height by gamma**t
    assert rs.cyclic(2, 0.1, 0.5, 2, mode="exp_range", gamma=0.9) == pytest.approx(0.1 + 0.4 * 0.81)
    # asymmetric cycle: 1 step up, 3 down
    asym = [rs.cyclic(t, 0.0, 1.0, 1, 3) for t in range(5)]
    assert asym == pytest.approx([0, 1, 2 / 3, 1 / 3, 0])


def test_one_cycle_formula():
    T, m = 100, 1.0
    lrs_ = [rs.one_cycle(t, m, T) for t in range(T)]
    assert lrs_[0] == pytest.approx(m / 25)
    peak = int(0.3 * T) - 1
    assert lrs_[peak] == pytest.approx(m) and max(lrs_) == pytest.approx(m)
    assert lrs_[-1] == pytest.approx(m / 25 / 1e4)
    assert all(a <= b for a, b in zip(lrs_[:peak], lrs_[1:peak + 1]))  # rises, then falls
    assert all(a >= b for a, b in zip(lrs_[peak:], lrs_[peak + 1:]))
    lin = [rs.one_cycle(t, 1.0, 11, pct_start=0.5, anneal_strategy="linear", div_factor=10,
                        final_div_factor=1) for t in (0, 2, 4.5)]
    assert lin == pytest.approx([0.1, 0.1 + 0.9 * 2 / 4.5, 1.0])


def test_sgdr_formula_and_cycle_ends():
    got = [rs.cosine_warm_restarts(t, 1.0, T_0=2, T_mult=2) for t in range(8)]
    c = lambda cur, T: (1 + math.cos(math.pi * cur / T)) / 2  # noqa: E731
    assert got == pytest.approx([1, c(1, 2), 1, c(1, 4), c(2, 4), c(3, 4), 1, c(1, 8)])
    assert rs.sgdr_cycle_ends(20, 2, 2) == [1, 5, 13]
    assert rs.sgdr_cycle_ends(10, 3, 1) == [2, 5, 8]
    # each cycle end is a local minimum of the LR, followed by a restart to lr0
    for e in rs.sgdr_cycle_ends(40, 3, 2)[:-1]:
        assert rs.cosine_warm_restarts(e + 1, 1.0, 3, 2) == 1.0
        assert rs.cosine_warm_restarts(e, 1.0, 3, 2) < rs.cosine_warm_restarts(e - 1, 1.0, 3, 2)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: rs.step_decay(-1, 1.0, 2), "t must be >= 0"),
        (lambda: rs.step_decay(0, 1.0, 0), "step_size must be > 0"),
        (lambda: rs.cosine_decay(0, 1.0, 0), "T_max must be > 0"),
        (lambda: rs.cyclic(0, 0.1, 1.0, 2, mode="tri"), "mode must be"),
        (lambda: rs.one_cycle(101, 1.0, 100), "t <= total_steps"),
        (lambda: rs.one_cycle(0, 1.0, 100, anneal_strategy="exp"), "anneal_strategy"),
        (lambda: rs.cosine_warm_restarts(0, 1.0, 2, T_mult=0), "T_mult must be"),
        (lambda: rs.NewBobPlateau(0.1, factor=1.5), r"factor must be in \(0, 1\)"),
        (lambda: rs.NewBobPlateau(), "give lr0"),
        (lambda: rs.FunctionScheduler(_opt(), 3), "fn must be callable"),
    ],
)
def test_invalid_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# ---------------------------------------------------------------------------------------------
# against torch over the full horizon (two param groups with different base LRs)
# ---------------------------------------------------------------------------------------------


def test_step_vs_torch():
    _assert_matches_torch(partial(rs.step_decay, step_size=7, gamma=0.3),
                          lambda o: lrs.StepLR(o, step_size=7, gamma=0.3), 60, groups=2)


def test_multistep_vs_torch():
    _assert_matches_torch(partial(rs.multistep_decay, milestones=[5, 12, 12, 40], gamma=0.5),
                          lambda o: lrs.MultiStepLR(o, milestones=[5, 12, 12, 40], gamma=0.5),
                          60, groups=2)


def test_exponential_vs_torch_exponentiallr():
    """a0*exp(-k t) is torch's ExponentialLR with gamma = exp(-k)."""
    k = 0.07
    seq = _assert_matches_torch(partial(rs.exponential_decay, k=k),
                                lambda o: lrs.ExponentialLR(o, gamma=math.exp(-k)), 80, groups=2)
    assert seq[-1, 0] < seq[0, 0] * 0.01


def test_cosine_vs_torch():
    _assert_matches_torch(partial(rs.cosine_decay, T_max=50, eta_min=0.001),
                          lambda o: lrs.CosineAnnealingLR(o, T_max=50, eta_min=0.001), 51, groups=2)


def test_linear_vs_torch():
    _assert_matches_torch(partial(rs.linear_decay, total_iters=30, start_factor=1.0, end_factor=0.1),
                          lambda o: lrs.LinearLR(o, 1.0, 0.1, total_iters=30), 50, groups=2)
    # torch's own defaults (a warmup from 1/3 to 1)
    _assert_matches_torch(partial(rs.linear_decay, total_iters=5, start_factor=1 / 3, end_factor=1.0),
                          lambda o: lrs.LinearLR(o), 10)


@pytest.mark.parametrize("mode,gamma", [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.98)])
def test_cyclic_vs_torch(mode, gamma):
    fn = partial(rs.cyclic, max_lr=1.0, step_size_up=5, step_size_down=8, mode=mode, gamma=gamma)
    _assert_matches_torch(
        fn,
        lambda o: lrs.CyclicLR(o, base_lr=LR0, max_lr=1.0, step_size_up=5, step_size_down=8,
                               mode=mode, gamma=gamma, cycle_momentum=False),
        60,
    )


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_vs_torch(strategy, three_phase):
    T, max_lr = 97, 0.8
    ours = _lr_sequence(lambda o: rs.FunctionScheduler(
        o, partial(rs.one_cycle, total_steps=T, pct_start=0.25, anneal_strategy=strategy,
                   three_phase=three_phase)), T, lr=max_lr)
    theirs = _lr_sequence(lambda o: lrs.OneCycleLR(
        o, max_lr=max_lr, total_steps=T, pct_start=0.25, anneal_strategy=strategy,
        three_phase=three_phase, cycle_momentum=False), T, lr=max_lr)
    assert_close(ours, theirs, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("T_0,T_mult", [(5, 1), (3, 2), (2, 3)])
def test_sgdr_vs_torch(T_0, T_mult):
    _assert_matches_torch(partial(rs.cosine_warm_restarts, T_0=T_0, T_mult=T_mult, eta_min=0.01),
                          lambda o: lrs.CosineAnnealingWarmRestarts(o, T_0, T_mult, eta_min=0.01),
                          70, groups=2)


def test_warmup_vs_torch_lambdalr():
    """Warmup + cosine through FunctionScheduler == LambdaLR with the equivalent factor."""
    W, T = 10, 40

    def factor(t):
        if t < W:
            return t / W
        return (1 + math.cos(math.pi * min(t - W, T) / T)) / 2

    _assert_matches_torch(rs.with_warmup(partial(rs.cosine_decay, T_max=T), W),
                          lambda o: lrs.LambdaLR(o, factor), W + T + 5, groups=2)


def test_inverse_time_and_sqrt_vs_torch_lambdalr():
    _assert_matches_torch(partial(rs.inverse_time_decay, k=0.3),
                          lambda o: lrs.LambdaLR(o, lambda t: 1 / (1 + 0.3 * t)), 40)
    _assert_matches_torch(partial(rs.inverse_sqrt_decay, timescale=5.0),
                          lambda o: lrs.LambdaLR(o, lambda t: (1 + t / 5.0) ** -0.5), 40)


def test_function_scheduler_state_dict_resume():
    """A scheduler restored from state_dict continues the same sequence."""
    fn = partial(rs.step_decay, step_size=3, gamma=0.5)
    full = _lr_sequence(lambda o: rs.FunctionScheduler(o, fn), 10)
    opt = _opt()
    s = rs.FunctionScheduler(opt, fn)
    for _ in range(4):
        opt.step()
        s.step()
    state = s.state_dict()
    assert "fn" not in state and "optimizer" not in state
    opt2 = _opt()
    opt2.param_groups[0]["initial_lr"] = LR0
    s2 = rs.FunctionScheduler(opt2, fn, last_epoch=3)
    s2.load_state_dict(state)
    s2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(full[5, 0].item())


# ---------------------------------------------------------------------------------------------
# reduce on plateau
# ---------------------------------------------------------------------------------------------


def _metrics(seed, n=60):
    """A noisy, plateauing validation loss (so reductions really happen)."""
    rnd = random.Random(seed)
    return [1.0 / (1 + 0.2 * t) + 0.05 * rnd.random() for t in range(n)]


@pytest.mark.parametrize(
    "threshold,threshold_mode,patience,mode",
    [(0.0, "abs", 0, "min"), (0.01, "abs", 0, "min"), (0.02, "rel", 2, "min"),
     (0.005, "abs", 1, "max")],
)
def test_plateau_best_mode_vs_torch(threshold, threshold_mode, patience, mode):
    ms = _metrics(3)
    if mode == "max":
        ms = [-m for m in ms]
    opt = _opt(groups=2)
    theirs = lrs.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=patience,
                                   threshold=threshold, threshold_mode=threshold_mode,
                                   min_lr=1e-3)
    opt2 = _opt(groups=2)
    ours = rs.NewBobPlateau(factor=0.5, threshold=threshold, threshold_mode=threshold_mode,
                            mode=mode, compare_to="best", patience=patience, min_lr=1e-3,
                            optimizer=opt2)
    a, b = [], []
    for m in ms:
        theirs.step(m)
        ours.step(m)
        a.append([g["lr"] for g in opt.param_groups])
        b.append([g["lr"] for g in opt2.param_groups])
    assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-12, atol=0)
    assert len(set(x[0] for x in a)) >= 3  # at least two reductions happened


def test_newbob_halves_when_improvement_below_threshold():
    """Classic new-bob: compare with the previous epoch; halve when it improved by < threshold."""
    sched = rs.NewBobPlateau(1.0, threshold=0.05)
    losses = [1.0, 0.8, 0.78, 0.6, 0.59, 0.7, 0.5]
    #                 ok   <0.05  ok  <0.05  worse  ok
    got = [sched.step(m) for m in losses]
    assert got == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125, 0.125]


def test_newbob_previous_differs_from_best():
    """After a bad epoch, 'previous' judges the next epoch against the bad one, 'best' does not."""
    losses = [1.0, 1.2, 1.1]
    prev = rs.NewBobPlateau(1.0, compare_to="previous")
    best = rs.NewBobPlateau(1.0, compare_to="best")
    assert [prev.step(m) for m in losses] == [1.0, 0.5, 0.5]  # 1.1 < 1.2: improved
    assert [best.step(m) for m in losses] == [1.0, 0.5, 0.25]  # 1.1 > best 1.0: not improved


# ---------------------------------------------------------------------------------------------
# properties over random hyperparameters
# ---------------------------------------------------------------------------------------------

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_FAST = settings(max_examples=40, deadline=None)


@_FAST
@given(t=st.integers(0, 500), up=st.integers(1, 50), down=st.integers(1, 50),
       mode=st.sampled_from(["triangular", "triangular2", "exp_range"]))
def test_cyclic_stays_between_base_and_max(t, up, down, mode):
    lr = rs.cyclic(t, 0.1, 0.7, up, down, mode=mode, gamma=0.99)
    assert 0.1 - 1e-12 <= lr <= 0.7 + 1e-12
    if t % (up + down) == 0:
        assert lr == pytest.approx(0.1)  # every cycle starts at base_lr


@_FAST
@given(total=st.integers(10, 300), pct=st.floats(0.1, 0.9), three=st.booleans(),
       strategy=st.sampled_from(["cos", "linear"]))
def test_one_cycle_stays_in_range(total, pct, three, strategy):
    if three and 2 * pct * total - 2 > total - 1:
        with pytest.raises(ValueError, match="three_phase needs pct_start"):
            rs.one_cycle(0, 1.0, total, pct_start=pct, three_phase=True)
        assume(False)
    lo = 1.0 / 25 / 1e4
    for t in range(total):
        lr = rs.one_cycle(t, 1.0, total, pct_start=pct, anneal_strategy=strategy, three_phase=three)
        assert lo - 1e-12 <= lr <= 1.0 + 1e-12
    assert rs.one_cycle(total - 1, 1.0, total, pct, strategy, three_phase=three) == pytest.approx(lo)


@_FAST
@given(t=st.integers(0, 2000), T_0=st.integers(1, 20), T_mult=st.integers(1, 3))
def test_sgdr_restarts_exactly_at_cycle_boundaries(t, T_0, T_mult):
    lr = rs.cosine_warm_restarts(t, 1.0, T_0, T_mult, eta_min=0.01)
    assert 0.01 - 1e-12 <= lr <= 1.0
    starts = {0} | {e + 1 for e in rs.sgdr_cycle_ends(t + 1, T_0, T_mult)}
    assert (lr == 1.0) == (t in starts)
