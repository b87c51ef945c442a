"""Issue 5, item 7: each experiment's buggy run triggers its runtime (RT) check, the fixed run none.

The trainer runs under ``recipecheck.runtime.monitor`` when asked (``train(..., monitor=...)``);
the experiments record the RT codes of each run in ``Result.monitor`` and in ``details``.
"""
import pytest

torch = pytest.importorskip("torch")

from recipecheck.runtime.experiments import catalog  # noqa: E402
from recipecheck.runtime.experiments.base import runtime_check_codes  # noqa: E402
from recipecheck.runtime.reference.data import blobs, spiral  # noqa: E402
from recipecheck.runtime.reference.trainer import TrainConfig, mlp, parameter_vector, train  # noqa: E402

EXPS = catalog()
MONITORED = [e for e in EXPS if e.monitor_codes]

# the pairings verified here; a declaration that disappears must be a deliberate change
EXPECTED = {
    "RC101": ("RT104",),
    "RC201": ("RT105",),
    "RC301": ("RT109",),
    "RC302": ("RT109",),
    "RC401": ("RT110",),
    "RC510": ("RT108",),
    "RC605": ("RT106",),
    "RC701": ("RT111",),
    "sanity:initial-loss": ("RT101",),
}


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_declared_pairings():
    assert {e.rule: e.monitor_codes for e in MONITORED} == EXPECTED
    known = runtime_check_codes()
    sanity_suite = {"RT114", "RT115"}  # runtime/sanity.py's codes, not monitor checks
    for e in EXPS:
        assert set(e.rt_codes) <= known | sanity_suite, e.rule


@pytest.mark.parametrize("exp", MONITORED, ids=[e.rule for e in MONITORED])
def test_buggy_run_triggers_its_rt_check_and_fixed_run_none(exp):
    res = exp.run(seed=0)
    assert res.verdict == "pass", res.details  # the monitor does not disturb the measured claim
    assert res.monitor is not None, f"{exp.rule} did not record its runs' RT codes"
    buggy, fixed = set(res.monitor["buggy"]), set(res.monitor["fixed"])
    declared = set(exp.monitor_codes)
    assert declared <= buggy, f"{exp.rule}: buggy run fired {sorted(buggy)}, expected {sorted(declared)}"
    assert not declared & fixed, f"{exp.rule}: fixed run fired {sorted(declared & fixed)}"
    assert "runtime monitor: buggy run fired" in res.details


def _run(monitor, **cfg_kw):
    X, y = spiral(60, 3, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=30, optimizer="sgd", lr=0.3, momentum=0.9,
                      scheduler=lambda o, spe, ep: torch.optim.lr_scheduler.StepLR(o, 1, 0.5), **cfg_kw)
    model = mlp(2, 3, (32,), block=("linear", "act", "dropout"), dropout=0.2, seed=0)
    h = train(model, X[::2], y[::2], cfg, X_val=X[1::2], y_val=y[1::2], seed=0, monitor=monitor)
    return h, parameter_vector(model)


@pytest.mark.parametrize("zero_grad", ["before_backward", "never"])
def test_monitor_is_observe_only(zero_grad):
    h0, p0 = _run(None, zero_grad=zero_grad)
    h1, p1 = _run(True, zero_grad=zero_grad)
    assert torch.equal(p0, p1)
    assert h0.loss == h1.loss and h0.val_acc == h1.val_acc and h0.lr == h1.lr
    assert h0.rt_codes == [] and h0.rt_findings == []
    assert h1.rt_codes == sorted({f.code for f in h1.rt_findings})
    assert ("RT104" in h1.rt_codes) == (zero_grad == "never")


def test_monitor_options_pass_through():
    h, _ = _run({"checks": ["RT109"]}, zero_grad="never")
    assert h.rt_codes == []  # RT104 is not among the selected checks
    h, _ = _run({"checks": ["RT104"], "read_every": 5}, zero_grad="never")
    assert h.rt_codes == ["RT104"]


# Twins that the experiments above do not run under the monitor: the static rule's bug, run for
# real, makes its runtime check fire; the fixed recipe leaves it silent.
def _monitored(model, X, y, cfg):
    return train(model, X, y, cfg, seed=0, monitor=True, evaluate_every_epoch=False).rt_codes


def test_twin_rc602_too_low_adam_lr_fires_rt103():
    X, y = spiral(100, 3, seed=0)
    cfg = dict(epochs=20, batch_size=30, optimizer="adam")
    buggy = _monitored(mlp(2, 3, (64,), seed=0), X, y, TrainConfig(lr=1e-7, **cfg))  # RC602: Adam lr < 1e-6
    fixed = _monitored(mlp(2, 3, (64,), seed=0), X, y, TrainConfig(lr=1e-3, **cfg))
    assert "RT103" in buggy and "RT103" not in fixed


def test_twin_rc102_zero_grad_before_step_fires_rt112():
    # RC102's manual names RT103 as its twin, but with set_to_none the step skips every parameter, so
    # RT103 sees no update to measure; the loss that never moves is what the monitor catches (RT112).
    X, y = spiral(100, 3, seed=0)
    cfg = dict(epochs=20, batch_size=30, optimizer="sgd", lr=0.1, momentum=0.9)
    buggy = _monitored(mlp(2, 3, (64,), seed=0), X, y, TrainConfig(zero_grad="between_backward_and_step", **cfg))
    fixed = _monitored(mlp(2, 3, (64,), seed=0), X, y, TrainConfig(**cfg))
    assert "RT112" in buggy and "RT112" not in fixed and "RT104" not in buggy


def test_twin_unscaled_init_in_tanh_net_fires_rt107():
    # N(0, 1) weights (RC303) in a tanh network saturate the units; Xavier keeps them in range
    X, y = blobs(100, 3, dim=20, center_scale=3.0, seed=0)
    X = X * 3
    cfg = TrainConfig(epochs=3, batch_size=30, optimizer="sgd", lr=0.1)
    buggy = _monitored(mlp(20, 3, (64, 64), activation="tanh", init="normal", seed=0), X, y, cfg)
    fixed = _monitored(mlp(20, 3, (64, 64), activation="tanh", init="xavier", seed=0), X, y, cfg)
    assert "RT107" in buggy and "RT107" not in fixed
