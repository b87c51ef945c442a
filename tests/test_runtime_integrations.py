"""Tests for the Lightning and Hugging Face callbacks.

The real-framework tests skip cleanly when lightning / transformers are not installed. The
callbacks' logic is also exercised without the frameworks, against minimal stand-in modules
that provide only the base classes (``lightning.pytorch.Callback`` / ``transformers.TrainerCallback``),
driving the hooks in the order the frameworks call them.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import types

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

LIGHTNING_MOD = "recipecheck.runtime.integrations.lightning"
HF_MOD = "recipecheck.runtime.integrations.huggingface"


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    """One intra-op thread for tiny models; table-only HTML (the plots are test_runtime_report's)."""
    import recipecheck.runtime.report as report

    monkeypatch.setattr(report, "_import_matplotlib", lambda: None)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def blobs(n=256, classes=3, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    return centers[y] + torch.randn(n, dim, generator=g), y


def _fresh_import(monkeypatch, name):
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


# ------------------------------------------------------------------ import errors (no skip)


def test_package_imports_without_frameworks():
    import recipecheck.runtime.integrations as integ

    assert "lightning" in integ.__doc__ and "huggingface" in integ.__doc__


def test_lightning_import_error_names_the_extra(monkeypatch):
    for mod in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError) as info:
        _fresh_import(monkeypatch, LIGHTNING_MOD)
    msg = str(info.value)
    assert "pip install 'recipecheck[lightning]'" in msg and "PyTorch Lightning" in msg
    monkeypatch.delitem(sys.modules, LIGHTNING_MOD, raising=False)


def test_huggingface_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError) as info:
        _fresh_import(monkeypatch, HF_MOD)
    msg = str(info.value)
    assert "pip install 'recipecheck[huggingface]'" in msg and "transformers" in msg
    monkeypatch.delitem(sys.modules, HF_MOD, raising=False)


# ------------------------------------------------------------------ stand-in frameworks


@pytest.fixture
def fake_lightning(monkeypatch):
    pkg = types.ModuleType("lightning")
    sub = types.ModuleType("lightning.pytorch")

    class Callback:  # the base class is all the callback needs from Lightning
        pass

    sub.Callback = Callback
    pkg.pytorch = sub
    monkeypatch.setitem(sys.modules, "lightning", pkg)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", sub)
    mod = _fresh_import(monkeypatch, LIGHTNING_MOD)
    yield mod
    monkeypatch.delitem(sys.modules, LIGHTNING_MOD, raising=False)


@pytest.fixture
def fake_transformers(monkeypatch):
    pkg = types.ModuleType("transformers")

    class TrainerCallback:
        pass

    pkg.TrainerCallback = TrainerCallback
    monkeypatch.setitem(sys.modules, "transformers", pkg)
    mod = _fresh_import(monkeypatch, HF_MOD)
    yield mod
    monkeypatch.delitem(sys.modules, HF_MOD, raising=False)


class LitLike(nn.Module):
    """What the callback sees of a LightningModule: an nn.Module with a loss child."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 3))
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x):
        return self.net(x)


class FakeTrainer:
    def __init__(self, optimizer, scheduler=None):
        self.optimizers = [optimizer]
        self.lr_scheduler_configs = [types.SimpleNamespace(scheduler=scheduler)] if scheduler else []
        self.current_epoch = 0
        self.sanity_checking = False
        self.callback_metrics = {}


def _drive_lightning(cb, module, trainer, epochs=2, zero_grad=True, fail=False):
    x, y = blobs()
    opt = trainer.optimizers[0]
    cb.on_fit_start(trainer, module)
    for epoch in range(epochs):
        trainer.current_epoch = epoch
        cb.on_train_epoch_start(trainer, module)
        for i in range(0, len(x), 32):
            loss = module.criterion(module(x[i : i + 32]), y[i : i + 32])
            cb.on_before_backward(trainer, module, loss)
            loss.backward()
            opt.step()
            if zero_grad:
                opt.zero_grad()
            if fail and i >= 64:
                err = RuntimeError("boom")
                cb.on_exception(trainer, module, err)
                return
        with torch.no_grad():
            module.eval()
            val = module.criterion(module(x[:64]), y[:64])
            module.train()
        trainer.callback_metrics = {"val_loss": val, "val/acc": torch.tensor(0.5 + 0.1 * epoch), "train_loss": loss.detach(),
                                    "lr-SGD": 0.1}
        cb.on_validation_epoch_end(trainer, module)
        cb.on_validation_end(trainer, module)
        cb.on_train_epoch_end(trainer, module)
    cb.on_fit_end(trainer, module)
    cb.teardown(trainer, module, "fit")


def test_lightning_callback_monitors_fit_and_writes_report(fake_lightning, tmp_path):
    torch.manual_seed(0)
    module = LitLike()
    opt = torch.optim.SGD(module.parameters(), lr=0.05, momentum=0.9)
    trainer = FakeTrainer(opt, torch.optim.lr_scheduler.StepLR(opt, step_size=10))
    cb = fake_lightning.RecipecheckCallback(report=tmp_path / "rep", summary=False)
    before = _hook_count(module)
    _drive_lightning(cb, module, trainer)
    assert _hook_count(module) == before  # detached
    assert not cb._session.active
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(data) == {"findings", "series", "run"}
    assert data["run"]["steps"] == 16
    series = data["series"]
    assert series["val/loss"]["value"] and len(series["val/acc"]["value"]) == 2  # logged once per epoch
    assert "train/loss" in series and "val/lr-SGD" not in series
    assert len(series["loss"]["value"]) > 0
    assert (tmp_path / "rep" / "report.html").is_file()
    assert cb.findings == [f for f in cb.findings]  # available after fit


def test_lightning_callback_reports_a_buggy_loop(fake_lightning, tmp_path):
    torch.manual_seed(0)
    module = LitLike()
    opt = torch.optim.SGD(module.parameters(), lr=0.01)
    cb = fake_lightning.RecipecheckCallback(report=None, summary=False)
    _drive_lightning(cb, module, FakeTrainer(opt), epochs=1, zero_grad=False)
    assert "RT104" in [f.code for f in cb.findings]


def test_lightning_callback_on_exception_closes_the_monitor(fake_lightning, tmp_path):
    module = LitLike()
    opt = torch.optim.SGD(module.parameters(), lr=0.01)
    cb = fake_lightning.RecipecheckCallback(report=tmp_path, summary=False)
    before = _hook_count(module)
    _drive_lightning(cb, module, FakeTrainer(opt), fail=True)
    assert _hook_count(module) == before and not cb._session.active
    assert (tmp_path / "report.json").is_file()


def test_hf_callback_monitors_train_and_writes_report(fake_transformers, tmp_path):
    class HFLike(nn.Module):  # HF models compute their loss in forward
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))

        def forward(self, x, labels=None):
            logits = self.net(x)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
            return out

    torch.manual_seed(0)
    model = HFLike()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    accelerated = types.SimpleNamespace(optimizer=opt)  # accelerate-style wrapper is unwrapped
    cb = fake_transformers.RecipecheckCallback(report=tmp_path / "hf", summary=False)
    args = state = control = types.SimpleNamespace()
    before = _hook_count(model)
    cb.on_train_begin(args, state, control, model=model, optimizer=accelerated, lr_scheduler=sched)
    assert cb.monitor is not None and cb.monitor.optimizers == [opt]
    x, y = blobs()
    for epoch in range(2):
        cb.on_epoch_begin(args, state, control)
        for i in range(0, len(x), 32):
            out = model(x[i : i + 32], labels=y[i : i + 32])
            out["loss"].backward()
            opt.step()
            sched.step()
            opt.zero_grad()
        cb.on_log(args, state, control, logs={"loss": float(out["loss"].detach()), "learning_rate": 1e-2})
        with torch.no_grad():
            model.eval()
            ev = model(x[:64], labels=y[:64])["loss"]
            model.train()
        cb.on_evaluate(args, state, control, metrics={"eval_loss": float(ev), "eval_accuracy": 0.9, "eval_runtime": 0.1,
                                                      "eval_samples_per_second": 100.0, "epoch": float(epoch + 1)})
    cb.on_train_end(args, state, control, model=model)
    assert _hook_count(model) == before
    data = json.loads((tmp_path / "hf" / "report.json").read_text())
    series = data["series"]
    assert len(series["loss"]["value"]) > 0 and all(math.isfinite(v) for v in series["loss"]["value"])
    assert len(series["val/loss"]["value"]) == 2 and "val/accuracy" in series
    assert "val/runtime" not in series and "val/samples_per_second" not in series and "val/epoch" not in series
    assert len(series["train/loss"]["value"]) == 2
    assert data["run"]["steps"] == 16
    cb.close()  # idempotent


def test_pick_metrics_and_unwrap():
    from recipecheck.runtime.integrations._common import pick_metrics, scalar, unwrap_optimizer

    got = pick_metrics({"val_loss_epoch": torch.tensor(1.5), "val_loss_step": 2.0, "val/acc": 0.5, "val_x": torch.ones(3),
                        "val_nan": float("nan"), "train_loss": 3.0}, ("val_", "val/"))
    assert got == {"loss": 1.5, "acc": 0.5}
    assert scalar(True) is None and scalar(torch.tensor([2.0])) == 2.0
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    assert unwrap_optimizer(types.SimpleNamespace(optimizer=types.SimpleNamespace(optimizer=opt))) is opt
    assert unwrap_optimizer(opt) is opt


# ------------------------------------------------------------------ real frameworks (skip if absent)


def test_real_lightning_fit(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from torch.utils.data import DataLoader, TensorDataset

    from recipecheck.runtime.integrations.lightning import RecipecheckCallback

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 3))
            self.criterion = nn.CrossEntropyLoss()

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = self.criterion(self(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", self.criterion(self(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)

    x, y = blobs()
    train = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32)
    module = Lit()
    cb = RecipecheckCallback(report=tmp_path / "lit", summary=False)
    trainer = pl.Trainer(max_epochs=2, callbacks=[cb], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(module, train, val)
    data = json.loads((tmp_path / "lit" / "report.json").read_text())
    assert data["run"]["steps"] == 16
    assert len(data["series"]["val/loss"]["value"]) == 2
    assert _hook_count(module) == 0


def test_real_transformers_train(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    import inspect

    from recipecheck.runtime.integrations.huggingface import RecipecheckCallback

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))

        def forward(self, x=None, labels=None):
            logits = self.net(x)
            loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return {"loss": loss, "logits": logits} if loss is not None else {"logits": logits}

    x, y = blobs()
    data = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
    params = inspect.signature(transformers.TrainingArguments.__init__).parameters
    strategy = "eval_strategy" if "eval_strategy" in params else "evaluation_strategy"
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), num_train_epochs=2, per_device_train_batch_size=32,
        per_device_eval_batch_size=32, learning_rate=1e-2, logging_steps=4, save_strategy="no", report_to=[],
        disable_tqdm=True, remove_unused_columns=False, **{strategy: "epoch"},
    )
    cb = RecipecheckCallback(report=tmp_path / "hf", summary=False)
    model = Tiny()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:64], callbacks=[cb])
    trainer.train()
    report = json.loads((tmp_path / "hf" / "report.json").read_text())
    assert report["run"]["steps"] == 16
    assert len(report["series"]["val/loss"]["value"]) == 2
    assert len(report["series"]["loss"]["value"]) > 0
    assert _hook_count(model) == 0
