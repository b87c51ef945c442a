"""Each RT check fires on a small buggy run and stays quiet on the clean look-alike."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from recipecheck.runtime import monitor  # noqa: E402
from recipecheck.runtime.checks.rt101_initial_loss import chance_level  # noqa: E402
from runtime_helpers.loops import make_data, mlp, train  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(model, opt, *, sched=None, crit=None, n=256, checks=None, num_classes=None, pass_sched=True, **kw):
    x, y = make_data(n)
    crit = crit or nn.CrossEntropyLoss()
    with monitor(model, opt, scheduler=sched if pass_sched else None, criterion=crit, report=None,
                 summary=False, checks=checks, num_classes=num_classes) as mon:
        train(model, opt, x, y, mon=mon, crit=crit, sched=sched, **kw)
    assert not mon.run["check_errors"], mon.run["check_errors"]
    return mon


def codes(mon):
    return [f.code for f in mon.findings]


def the(mon, code):
    found = [f for f in mon.findings if f.code == code]
    assert found, f"{code} did not fire: {codes(mon)}"
    f = found[0]
    assert f.message and "Fix:" in f.message and f.step is not None
    return f


def model_and_sgd(lr=0.05, seed=0, **kw):
    torch.manual_seed(seed)
    m = mlp(**kw)
    return m, torch.optim.SGD(m.parameters(), lr=lr)


# RT101 -------------------------------------------------------------------------------------

def test_rt101_fires_on_overconfident_init():
    m, opt = model_and_sgd()
    with torch.no_grad():
        m[-1].weight.mul_(40)
    f = the(run(m, opt, epochs=1, checks=["RT101"]), "RT101")
    assert f.step == 1 and "ln 3" in f.message and f.static_twin == "RC303"


def test_rt101_quiet_on_default_init():
    m, opt = model_and_sgd()
    assert codes(run(m, opt, epochs=1, checks=["RT101"])) == []


def test_rt101_chance_levels():
    assert chance_level({"type": "CrossEntropyLoss", "logits_shape": (8, 10)})[0] == pytest.approx(math.log(10))
    assert chance_level({"type": "BCEWithLogitsLoss", "logits_shape": (8, 1)})[0] == pytest.approx(math.log(2))
    assert chance_level(None, num_classes=5)[0] == pytest.approx(math.log(5))
    assert chance_level({"type": "MSELoss"}) is None


def test_rt101_bce_with_logits():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    with torch.no_grad():
        m[-1].bias.fill_(8.0)  # confident "1" at init
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    crit = nn.BCEWithLogitsLoss()
    x, y = make_data(64)
    with monitor(m, opt, criterion=crit, report=None, summary=False, checks=["RT101"]) as mon:
        for i in range(0, 64, 16):
            opt.zero_grad()
            crit(m(x[i:i + 16]).squeeze(1), (y[i:i + 16] == 0).float()).backward()
            opt.step()
    assert "ln 2" in the(mon, "RT101").message


# RT103 -------------------------------------------------------------------------------------

def test_rt103_fires_when_lr_far_too_low():
    m, opt = model_and_sgd(lr=1e-6)
    f = the(run(m, opt, epochs=26, checks=["RT103"]), "RT103")
    assert "too low" in f.message and "update/weight about" in f.message and f.static_twin == "RC602"


def _unstable_regression(steps=300, checks=("RT103",)):
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(0.5)
    opt = torch.optim.SGD(m.parameters(), lr=1.05)  # beyond the stability limit: |w - 1| x1.1 per step
    x = torch.ones(4, 1)
    with monitor(m, opt, report=None, summary=False, checks=list(checks)) as mon:
        for _ in range(steps):
            opt.zero_grad()
            ((m(x) - 1.0) ** 2).mean().backward()
            opt.step()
    return mon


def test_rt103_fires_when_lr_far_too_high():
    f = the(_unstable_regression(), "RT103")
    assert "too high" in f.message and f.where == "weight"


def test_rt103_quiet_on_healthy_lr():
    m, opt = model_and_sgd(lr=0.05)
    assert codes(run(m, opt, epochs=30, checks=["RT103"])) == []


# RT104 -------------------------------------------------------------------------------------

def test_rt104_fires_without_zero_grad():
    m, opt = model_and_sgd(lr=0.01)
    f = the(run(m, opt, epochs=1, zero_grad=False, checks=["RT104"]), "RT104")
    assert f.severity == "error" and f.static_twin == "RC101" and f.where == "0.weight"


@pytest.mark.parametrize("stop_at", [60, 450])
def test_rt104_catches_resets_that_stop_later_in_the_run(stop_at):
    # the watch is dense at first (every 20th step), sparse later (every 100th): a reset that
    # disappears mid-run (zero_grad behind a condition) is caught within two watches
    m, opt = model_and_sgd(lr=1e-4)
    x, y = make_data(64)
    crit = nn.CrossEntropyLoss()
    with monitor(m, opt, criterion=crit, report=None, summary=False, checks=["RT104"]) as mon:
        for step in range(1, 701):
            if step < stop_at:
                opt.zero_grad()
            crit(m(x), y).backward()
            opt.step()
    f = the(mon, "RT104")
    assert stop_at < f.step <= stop_at + (60 if stop_at < 200 else 220), f.step


@pytest.mark.parametrize("set_to_none", [True, False])
def test_rt104_quiet_with_gradient_accumulation(set_to_none):
    m, opt = model_and_sgd(lr=0.01)
    x, y = make_data(256)
    crit = nn.CrossEntropyLoss()
    with monitor(m, opt, criterion=crit, report=None, summary=False, checks=["RT104"]) as mon:
        for i in range(0, 256, 16):
            (crit(m(x[i:i + 16]), y[i:i + 16]) / 4).backward()
            if (i // 16 + 1) % 4 == 0:
                opt.step()
                opt.zero_grad(set_to_none=set_to_none)
    assert mon.step == 4 and codes(mon) == []


def test_rt104_quiet_with_zero_grad_before_backward_and_clipping():
    m, opt = model_and_sgd(lr=0.01)
    x, y = make_data(256)
    crit = nn.CrossEntropyLoss()
    with monitor(m, opt, criterion=crit, report=None, summary=False, checks=["RT104"]) as mon:
        for i in range(0, 256, 8):
            m.zero_grad(set_to_none=False)
            crit(m(x[i:i + 8]), y[i:i + 8]).backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5)
            opt.step()
    assert codes(mon) == []


# RT105 -------------------------------------------------------------------------------------

def test_rt105_fires_for_steplr_stepped_per_batch():
    m, opt = model_and_sgd(lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5)
    f = the(run(m, opt, sched=sched, sched_per_batch=True, epochs=2, checks=["RT105"]), "RT105")
    assert "StepLR" in f.message and f.static_twin == "RC201" and f.severity == "error"


def test_rt105_fires_from_lr_trace_without_scheduler_object():
    m, opt = model_and_sgd(lr=0.1)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
    f = the(run(m, opt, sched=sched, pass_sched=False, sched_per_batch=True, epochs=2, n=1024,
                val=make_data(32, seed=1), checks=["RT105"]), "RT105")
    assert "fell from" in f.message


def test_rt105_fires_for_cosine_with_epoch_horizon_per_batch():
    m, opt = model_and_sgd(lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    the(run(m, opt, sched=sched, sched_per_batch=True, epochs=2, checks=["RT105"]), "RT105")


@pytest.mark.parametrize("kind", ["steplr-per-epoch", "onecycle-per-batch", "cosine-per-batch", "exp-per-epoch"])
def test_rt105_quiet_on_correct_schedulers(kind):
    for pass_sched in (True, False):
        m, opt = model_and_sgd(lr=0.1)
        epochs, per_batch = 12, True
        if kind == "steplr-per-epoch":
            sched, per_batch = torch.optim.lr_scheduler.StepLR(opt, 3), False
        elif kind == "exp-per-epoch":
            sched, per_batch = torch.optim.lr_scheduler.ExponentialLR(opt, 0.7), False
        elif kind == "onecycle-per-batch":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * 8)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * 8)
        mon = run(m, opt, sched=sched, sched_per_batch=per_batch, pass_sched=pass_sched, epochs=epochs,
                  val=make_data(32, seed=1), checks=["RT105"])
        assert codes(mon) == []


# RT106 -------------------------------------------------------------------------------------

def test_rt106_fires_on_nan_with_step_and_parameter():
    m, opt = model_and_sgd(lr=1e6)
    mon = run(m, opt, epochs=1, checks=["RT106"])
    loss_f = [f for f in mon.findings if f.where == "loss"][0]
    grad_f = [f for f in mon.findings if f.where != "loss"][0]
    assert loss_f.step == 3 and "nan" in loss_f.message.lower()
    assert grad_f.where.endswith("weight") or grad_f.where.endswith("bias")


def test_rt106_fires_on_inf_loss_from_bad_log():
    torch.manual_seed(0)
    m = nn.Linear(4, 1)
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    x = torch.randn(8, 4)
    with monitor(m, opt, report=None, summary=False, checks=["RT106"]) as mon:
        for i in range(6):
            opt.zero_grad()
            loss = -torch.log(torch.relu(m(x)) * (0.0 if i >= 4 else 1.0) + (0.0 if i >= 4 else 1.0)).mean()
            mon.observe_loss(loss)
            loss.backward()
            opt.step()
    f = the(mon, "RT106")
    assert f.step == 5


def test_rt106_quiet_on_clean_run():
    m, opt = model_and_sgd()
    assert codes(run(m, opt, epochs=3, checks=["RT106"])) == []


# RT107 -------------------------------------------------------------------------------------

def test_rt107_fires_on_dead_relus():
    m, opt = model_and_sgd(lr=0.01)
    with torch.no_grad():
        m[0].bias.fill_(-100)
    f = the(run(m, opt, epochs=1, checks=["RT107"]), "RT107")
    assert f.where == "1" and "zero" in f.message


def test_rt107_fires_on_saturated_tanh():
    m, opt = model_and_sgd(lr=0.01, act=nn.Tanh)
    with torch.no_grad():
        m[0].weight.mul_(100)
    f = the(run(m, opt, epochs=1, checks=["RT107"]), "RT107")
    assert "saturated" in f.message and f.where == "1"


def test_rt107_quiet_and_records_histograms():
    m, opt = model_and_sgd(lr=0.05, act=nn.Tanh)
    mon = run(m, opt, epochs=3, checks=["RT107"])
    assert codes(mon) == []
    h = mon.series["activations/1/first"]
    assert len(h["edges"]) == len(h["counts"]) + 1 and sum(h["counts"]) == 16 * 32
    assert "activations/3/last" in mon.series


# RT108 -------------------------------------------------------------------------------------

def test_rt108_fires_on_deep_sigmoid_stack():
    m, opt = model_and_sgd(lr=0.01, act=nn.Sigmoid, depth=10)
    f = the(run(m, opt, epochs=1, checks=["RT108"]), "RT108")
    assert "Vanishing" in f.message and f.where == "0.weight"


def test_rt108_fires_on_growing_gradients():
    f = the(_unstable_regression(checks=["RT108"]), "RT108")
    assert "grew" in f.message


def test_rt108_quiet_on_shallow_relu_mlp():
    m, opt = model_and_sgd(lr=0.05, depth=3)
    mon = run(m, opt, epochs=8, checks=["RT108"])
    assert codes(mon) == []
    assert any(n.startswith("grad_norm/") for n in mon.series.names())


# RT109 -------------------------------------------------------------------------------------

def test_rt109_fires_on_constant_init():
    m, opt = model_and_sgd(lr=0.1)
    for layer in m:
        if isinstance(layer, nn.Linear):
            nn.init.constant_(layer.weight, 0.1)
    mon = run(m, opt, epochs=2, checks=["RT109"])
    assert {f.where for f in mon.findings if f.code == "RT109"} == {"0.weight", "2.weight"}
    assert the(mon, "RT109").step == 1


def test_rt109_quiet_on_zero_initialized_output_layer():
    m, opt = model_and_sgd(lr=0.1)
    with torch.no_grad():
        m[-1].weight.zero_()
    assert codes(run(m, opt, epochs=2, checks=["RT109"])) == []


# RT110 -------------------------------------------------------------------------------------

def test_rt110_fires_on_same_order_every_epoch():
    m, opt = model_and_sgd(lr=0.01)
    f = the(run(m, opt, epochs=3, shuffle=False, checks=["RT110"]), "RT110")
    assert "same order" in f.message and f.static_twin == "RC401"


def test_rt110_fires_with_epoch_boundaries_from_log_val():
    m, opt = model_and_sgd(lr=0.01)
    mon = run(m, opt, epochs=3, shuffle=False, val=make_data(16, seed=1), checks=["RT110"])
    assert "epoch 1" in the(mon, "RT110").message


def test_rt110_quiet_when_shuffled():
    m, opt = model_and_sgd(lr=0.01)
    assert codes(run(m, opt, epochs=4, shuffle=True, checks=["RT110"])) == []
    m, opt = model_and_sgd(lr=0.01)
    assert codes(run(m, opt, epochs=4, shuffle=True, val=make_data(16, seed=1), checks=["RT110"])) == []


# RT111 -------------------------------------------------------------------------------------

def _eval_run(call_eval, ctx=torch.no_grad):
    m, opt = model_and_sgd(dropout=0.2, bn=True)
    x, y = make_data(128)
    crit = nn.CrossEntropyLoss()
    with monitor(m, opt, criterion=crit, report=None, summary=False, checks=["RT111"]) as mon:
        train(m, opt, x, y, mon=mon, crit=crit, epochs=1)
        if call_eval:
            m.eval()
        with ctx():
            m(x[:16])
        m.train()
    return mon


def test_rt111_fires_without_model_eval():
    f = the(_eval_run(False), "RT111")
    assert "no_grad" in f.message and f.static_twin == "RC701"
    assert "inference_mode" in the(_eval_run(False, torch.inference_mode), "RT111").message


def test_rt111_quiet_with_model_eval():
    assert codes(_eval_run(True)) == []


# RT112 -------------------------------------------------------------------------------------

def test_rt112_fires_when_loss_flat():
    m, opt = model_and_sgd(lr=0.0)
    f = the(run(m, opt, epochs=30, checks=["RT112"]), "RT112")  # past the 200-step warm-up
    assert "not decreased" in f.message


def test_rt112_fires_when_loss_diverges():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.0)
    with monitor(None, opt, report=None, summary=False, checks=["RT112"]) as mon:
        for i in range(200):
            loss = (p + 1.0 + (0.0 if i < 100 else (i - 100) * 0.1)).sum()
            if i < 100:
                loss = loss * (1.0 - i / 200)  # decreasing first
            mon.observe_loss(loss)
            loss.backward()
            opt.step()
            opt.zero_grad()
    assert "diverging" in the(mon, "RT112").message


def test_rt112_quiet_when_learning():
    m, opt = model_and_sgd(lr=0.05)
    assert codes(run(m, opt, epochs=30, checks=["RT112"])) == []


# RT113 -------------------------------------------------------------------------------------

def _log_run(train_losses, val_losses, train_metric=True):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.0)
    with monitor(None, opt, report=None, summary=False, checks=["RT113"]) as mon:
        for tl, vl in zip(train_losses, val_losses):
            for _ in range(3):
                loss = p.sum() + tl
                mon.observe_loss(loss)
                loss.backward()
                opt.step()
            if train_metric:
                mon.log_train(loss=tl, acc=1 - tl / 3)
            mon.log_val(loss=vl, acc=1 - vl / 3)
    return mon


def test_rt113_fires_on_growing_gap():
    train_l = [1.0, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1]
    val_l = [1.05, 0.9, 0.8, 0.82, 0.86, 0.95, 1.1]
    for train_metric in (True, False):
        f = the(_log_run(train_l, val_l, train_metric), "RT113")
        assert "early stopping" in f.message and f.severity == "info" and "epoch 2" in f.message


def test_rt113_quiet_when_val_keeps_improving():
    assert codes(_log_run([1.0, 0.8, 0.6, 0.45, 0.3, 0.2], [1.05, 0.9, 0.75, 0.62, 0.5, 0.45])) == []


def test_rt110_small_fingerprint_budget_pauses_and_resumes_per_epoch():
    from recipecheck.runtime.checks.rt110_unshuffled_data import UnshuffledTrainingData

    m, opt = model_and_sgd(lr=0.01)
    chk = UnshuffledTrainingData(per_epoch=2, overall=3)
    mon = run(m, opt, epochs=3, shuffle=False, val=make_data(16, seed=1), checks=[chk])
    f = the(mon, "RT110")
    assert "first 2 batches" in f.message
    m, opt = model_and_sgd(lr=0.01)
    chk = UnshuffledTrainingData(per_epoch=2, overall=3)
    assert codes(run(m, opt, epochs=3, shuffle=True, val=make_data(16, seed=1), checks=[chk])) == []
