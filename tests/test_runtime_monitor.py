"""Runtime monitor core: results unchanged, never crashes training, clean detach, bounded memory,
no per-step device reads, report contract."""

from __future__ import annotations

import gc
import json
import weakref

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from recipecheck.runtime import Monitor, monitor  # noqa: E402
from recipecheck.runtime.checks import all_check_classes  # noqa: E402
from recipecheck.runtime.checks.base import Check  # noqa: E402
from recipecheck.runtime.stats import BoundedSeries, Every, FirstK, LogSpaced  # noqa: E402
from runtime_helpers.loops import SmallCNN, make_data, mlp, train  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _global_hook_counts():
    import torch.nn.modules.module as M
    import torch.optim.optimizer as O

    dicts = [M._global_forward_hooks, M._global_forward_pre_hooks, M._global_backward_hooks,
             M._global_backward_pre_hooks, M._global_forward_hooks_always_called,
             M._global_forward_hooks_with_kwargs, O._global_optimizer_pre_hooks, O._global_optimizer_post_hooks]
    return [len(d) for d in dicts]


def _module_hook_count(model):
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {}))
        n += "_compiled_call_impl" in m.__dict__  # the monitor's call tap (not a hook: never pickled)
    for p in model.parameters():
        n += len(getattr(p, "_post_accumulate_grad_hooks", None) or {})
        n += len(getattr(p, "_backward_hooks", None) or {})
    return n


def _opt_hook_count(opt):
    return len(opt._optimizer_step_pre_hooks) + len(opt._optimizer_step_post_hooks)


MODELS = {
    "mlp-dropout-bn": lambda: mlp(dropout=0.3, bn=True),
    "mlp-tanh": lambda: mlp(act=nn.Tanh, dropout=0.1),
    "cnn": lambda: SmallCNN(),
    "inplace-relu": lambda: nn.Sequential(nn.Linear(10, 16), nn.ReLU(inplace=True), nn.Dropout(0.2),
                                          nn.Linear(16, 3)),
}
OPTS = {
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3),
}


def _train_once(model_name, opt_name, monitored, steps_epochs=3):
    torch.manual_seed(1234)
    model = MODELS[model_name]()
    opt = OPTS[opt_name](model.parameters())
    crit = nn.CrossEntropyLoss()
    if model_name == "cnn":
        g = torch.Generator().manual_seed(0)
        x = torch.randn(128, 1, 8, 8, generator=g)
        y = torch.randint(0, 3, (128,), generator=g)
    else:
        x, y = make_data(128)
    val = (x[:32], y[:32])
    if monitored:
        # read_every=7 and dense schedules: every check's code path runs many times in the run
        checks = [cls(schedule=Every(2), activation_schedule=Every(3)) for cls in all_check_classes()]
        with monitor(model, opt, criterion=crit, report=None, summary=False, read_every=7, checks=checks) as mon:
            train(model, opt, x, y, mon=mon, crit=crit, epochs=steps_epochs, bs=16, val=val)
        assert mon.step > 0 and not mon.run["check_errors"]
    else:
        train(model, opt, x, y, mon=_NullMon(), crit=crit, epochs=steps_epochs, bs=16, val=val)
    return model, torch.get_rng_state()


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("opt_name", sorted(OPTS))
def test_results_bitwise_identical_with_and_without_monitor(model_name, opt_name):
    # both loops run validation too (eval forwards under no_grad)
    a, rng_a = _train_once(model_name, opt_name, monitored=False)
    b, rng_b = _train_once(model_name, opt_name, monitored=True)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert torch.equal(rng_a, rng_b), "the monitor consumed the global RNG"


class _NullMon:
    def log_val(self, **kw):
        pass

    def observe_loss(self, loss):
        pass


class _Boom(Check):
    code = "RT999"
    name = "boom"
    schedule = Every(3)

    def on_post_step(self, mon, opt):
        if mon.step >= 6:
            raise RuntimeError("kaboom")


def test_a_check_that_raises_is_disabled_and_training_goes_on():
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(256)
    boom = _Boom()
    with monitor(model, opt, criterion=crit, report=None, summary=False, checks=["RT106", boom]) as mon:
        steps = train(model, opt, x, y, mon=mon, crit=crit, epochs=2)
    assert steps == 16 and mon.step == 16
    errs = mon.run["check_errors"]
    assert len(errs) == 1 and errs[0]["check"] == "RT999" and "kaboom" in errs[0]["error"]
    assert errs[0]["step"] == 6
    assert boom.disabled


def test_a_check_error_in_a_hook_path_never_reaches_training():
    class Bad(Check):
        code = "RT998"
        name = "bad"
        activation_types = (nn.ReLU,)
        activation_schedule = FirstK(5)

        def on_activation(self, mon, layer, module, output):
            raise ValueError("bad activation")

        def on_model_input(self, mon, model, args, kwargs):
            raise ValueError("bad input")

    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = make_data(128)
    crit = nn.CrossEntropyLoss()
    with monitor(model, opt, criterion=crit, report=None, summary=False, checks=[Bad()]) as mon:
        train(model, opt, x, y, mon=mon, crit=crit, epochs=1)
    assert mon.step == 4
    assert [e["check"] for e in mon.run["check_errors"]] == ["RT998"]


def test_no_hooks_remain_and_model_is_collectable():
    before = _global_hook_counts()
    torch.manual_seed(0)
    model = mlp(dropout=0.2, bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(256)
    with monitor(model, opt, criterion=crit, report=None, summary=False) as mon:
        assert _module_hook_count(model) > 0 and _opt_hook_count(opt) > 0
        train(model, opt, x, y, mon=mon, crit=crit, epochs=2)
    assert _module_hook_count(model) == 0
    assert _opt_hook_count(opt) == 0
    assert len(crit._forward_hooks) == 0 and "_compiled_call_impl" not in crit.__dict__
    assert _global_hook_counts() == before
    refs = [weakref.ref(model), weakref.ref(opt), weakref.ref(crit)]
    del model, opt, crit
    gc.collect()
    assert all(r() is None for r in refs)
    assert mon.series["loss"]["value"]  # results survive the release


def test_hooks_removed_when_training_raises():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(64)
    with pytest.raises(KeyError):
        with monitor(model, opt, criterion=crit, report=None, summary=False) as mon:
            train(model, opt, x, y, mon=mon, crit=crit, epochs=1)
            raise KeyError("user error")
    assert _module_hook_count(model) == 0 and _opt_hook_count(opt) == 0 and len(crit._forward_hooks) == 0
    assert mon.step == 2


def test_clean_reference_run_of_several_hundred_steps_has_no_warning():
    torch.manual_seed(0)
    model = mlp(dropout=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(512)
    vx, vy = make_data(128, seed=1)
    with monitor(model, opt, scheduler=sched, criterion=crit, report=None, summary=False) as mon:
        steps = train(model, opt, x, y, mon=mon, crit=crit, epochs=25, sched=sched, val=(vx, vy))
    assert steps >= 300
    assert [f for f in mon.findings if f.severity in ("warning", "error")] == []
    assert not mon.run["check_errors"]
    assert mon.epoch == 24
    names = set(mon.series.names())
    assert {"loss", "lr/group0", "val/loss"} <= names
    assert any(n.startswith("update_ratio/") for n in names)
    assert any(n.startswith("grad_norm/") for n in names)
    assert any(n.startswith("activations/") and n.endswith("/first") for n in names)


def test_no_device_reads_between_batched_reads(monkeypatch):
    """The hot path never calls .item()/.tolist()/.cpu(): only the read every N steps does."""
    torch.manual_seed(0)
    model = mlp(dropout=0.1, bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(32 * 40)
    calls = []
    for name in ("item", "tolist", "cpu", "numpy"):
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    with monitor(model, opt, criterion=crit, report=None, summary=False, read_every=1000) as mon:
        train(model, opt, x, y, mon=mon, crit=crit, epochs=1)
        assert mon.step == 40
        assert calls == []  # 40 steps, no read yet
    assert calls  # the final read happened at exit


def test_memory_bounded_series():
    s = BoundedSeries(max_points=64)
    for i in range(10_000):
        s.append(i, float(i))
    assert len(s) < 64 and s.steps[0] == 0 and s.steps[-1] > 9000
    assert s.steps == sorted(s.steps)

    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    x = torch.randn(8, 4)
    with monitor(model, opt, report=None, summary=False, max_points=50) as mon:
        for _ in range(3000):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            mon.observe_loss(loss)
            loss.backward()
            opt.step()
    for name in mon.series.names():
        data = mon.series[name]
        if "step" in data:
            assert len(data["step"]) <= 50, name
    assert mon.series["loss"]["step"][-1] > 2500


def test_schedules():
    assert [s for s in range(1, 40) if LogSpaced()(s)] == [1, 2, 4, 8, 16, 32]
    sched = FirstK(2) | Every(10)
    assert [s for s in range(1, 31) if sched(s)] == [1, 2, 10, 20, 30]
    for sch in (sched, LogSpaced(), Every(7), FirstK(5) | LogSpaced() | Every(33)):
        for start, end in ((1, 101), (37, 250), (100, 200)):
            assert sch.steps_in(start, end) == [s for s in range(start, end) if sch(s)], (sch, start)


def test_report_written_with_contract_keys(tmp_path):
    torch.manual_seed(0)
    model = mlp()
    with torch.no_grad():
        model[-1].weight.mul_(40)  # RT101
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(128)
    with monitor(model, opt, criterion=crit, report=tmp_path / "rep", summary=False) as mon:
        train(model, opt, x, y, mon=mon, crit=crit, epochs=1)
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(data) == {"findings", "series", "run"}
    assert data["findings"] and set(data["findings"][0]) >= {"code", "name", "severity", "message", "step",
                                                           "epoch", "where", "static_twin"}
    assert data["findings"][0]["code"] == "RT101"
    assert data["series"]["loss"]["step"][0] == 1
    assert data["run"]["steps"] == 4 and "check_errors" in data["run"]


def test_checks_are_discovered_and_match_the_catalog():
    import re
    from pathlib import Path

    codes = {c.code: c for c in all_check_classes()}
    assert set(codes) == {f"RT1{n:02d}" for n in (1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)}
    rules = Path(__file__).resolve().parents[1] / "docs" / "catalog.md"
    table = dict((m.group(1), (m.group(2), m.group(3)))
                 for m in re.finditer(r"^\| (RT\d{3}) \| ([\w-]+) \| (\w+) \|", rules.read_text(), re.M))
    for code, cls in codes.items():
        assert table[code] == (cls.name, cls.severity), code


def test_checks_option_selects_and_removes():
    assert [c.code for c in Monitor(checks=["RT103", "rt106"]).checks] == ["RT103", "RT106"]
    codes = [c.code for c in Monitor(checks=["-RT110"]).checks]
    assert "RT110" not in codes and "RT103" in codes
    with pytest.raises(ValueError):
        Monitor(checks=["RT777"])


def test_two_optimizers_alternating_and_pre_hooks_only_on_sampled_steps():
    torch.manual_seed(0)
    g, d = mlp(), mlp()
    og = torch.optim.SGD(g.parameters(), lr=0.05)
    od = torch.optim.Adam(d.parameters(), lr=1e-3)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(64)
    pre_counts = {}
    with monitor([d, g], [od, og], criterion=crit, report=None, summary=False) as mon:
        for i in range(1, 121):
            for model, opt in ((d, od), (g, og)):
                opt.zero_grad()
                crit(model(x), y).backward()
                opt.step()
            pre_counts[i] = len(od._optimizer_step_pre_hooks) + len(og._optimizer_step_pre_hooks)
    assert mon.step == 120 and not mon.run["check_errors"]
    assert pre_counts[17] == 0  # nothing sampled at step 18: no pre-hook at all
    assert pre_counts[99] > 0  # armed for step 100 (update ratio, gradient norms)
    names = mon.series.names()
    # both models are sampled; the second one's names carry a prefix
    assert {"update_ratio/0.weight", "update_ratio/model1.0.weight", "grad_norm/0", "grad_norm/model1.0"} <= set(names)
    assert _opt_hook_count(od) == 0 and _opt_hook_count(og) == 0
