"""RC2xx experiments: learning-rate schedules stepped at the wrong interval."""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.nn import functional as F

from ..reference.data import make_generator, spiral, train_val_split
from ..reference.trainer import TrainConfig, mlp, train
from .base import Result, experiment, verdict


@experiment(
    "RC201",
    "StepLR stepped once per batch instead of once per epoch decays len(loader) times too "
    "fast: the LR collapses toward zero within a few epochs and training stalls at a lower accuracy.",
    "lr_after_epoch_1",
    buggy_label="step() per batch",
    fixed_label="step() per epoch",
    rt_codes=("RT105",),
    metric="LR after epoch 1 (base LR 0.5, StepLR(5, 0.5), 10 batches per epoch)",
)
def epoch_scheduler_per_batch(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    lr = 0.5
    res, series, rt = {}, {"lr": {}, "loss": {}}, {}
    for label, interval in (("buggy", "batch"), ("fixed", "epoch")):
        model = mlp(2, 3, (64,), seed=seed)
        cfg = TrainConfig(
            epochs=20, batch_size=30, optimizer="sgd", lr=lr, momentum=0.9,
            scheduler=lambda opt, spe, ep: torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5),
            scheduler_interval=interval,
        )
        h = train(model, X, y, cfg, seed=seed, device=device, monitor=True)
        rt[label] = h.rt_codes
        res[label] = {
            "lr_after_epoch_1": h.epoch_lr[0],
            "final_lr": h.epoch_lr[-1],
            "final_loss": h.train_loss[-1],
            "final_acc": h.train_acc[-1],
        }
        series["lr"][label] = h.lr
        series["loss"][label] = h.loss
    b, f = res["buggy"], res["fixed"]
    ok = b["lr_after_epoch_1"] <= f["lr_after_epoch_1"] / 3.0 and b["final_lr"] <= f["final_lr"] * 1e-6 \
        and f["final_acc"] >= b["final_acc"] + 0.05
    return Result(
        b, f, verdict(ok),
        f"StepLR(step_size=5, gamma=0.5), 10 batches/epoch: LR after epoch 1 = {b['lr_after_epoch_1']:.3g} per batch "
        f"vs {f['lr_after_epoch_1']:.3g} intended (margin: >= 3x lower); final LR {b['final_lr']:.2e} vs "
        f"{f['final_lr']:.2e}; accuracy {b['final_acc']:.3f} vs {f['final_acc']:.3f} (margin >= 0.05)",
        series, monitor=rt,
    )


@experiment(
    "RC202",
    "OneCycleLR stepped once per epoch instead of once per batch never reaches its peak LR "
    "and never anneals: the run ends at a low warm-up LR.",
    "peak_lr_over_max",
    buggy_label="step() per epoch",
    fixed_label="step() per batch",
    metric="peak LR reached / max_lr (OneCycleLR)",
)
def batch_scheduler_per_epoch(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    max_lr = 0.5
    res, series = {}, {"lr": {}, "loss": {}}
    for label, interval in (("buggy", "epoch"), ("fixed", "batch")):
        model = mlp(2, 3, (64,), seed=seed)
        cfg = TrainConfig(
            epochs=20, batch_size=30, optimizer="sgd", lr=max_lr, momentum=0.9,
            scheduler=lambda opt, spe, ep: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=spe * ep),
            scheduler_interval=interval,
        )
        h = train(model, X, y, cfg, seed=seed, device=device)
        res[label] = {
            "peak_lr_over_max": max(h.lr) / max_lr,
            "final_lr_over_max": h.lr[-1] / max_lr,
            "final_loss": h.train_loss[-1],
            "final_acc": h.train_acc[-1],
        }
        series["lr"][label] = h.lr
        series["loss"][label] = h.loss
    b, f = res["buggy"], res["fixed"]
    ok = b["peak_lr_over_max"] <= 0.5 and f["peak_lr_over_max"] >= 0.99 \
        and b["final_lr_over_max"] >= 100 * f["final_lr_over_max"]
    return Result(
        b, f, verdict(ok),
        f"OneCycleLR(max_lr={max_lr}) over 20 epochs x 10 batches: peak LR = {b['peak_lr_over_max']:.3f} x max_lr "
        f"per epoch (margin <= 0.5) vs {f['peak_lr_over_max']:.3f} (>= 0.99); final LR {b['final_lr_over_max']:.2e} "
        f"vs {f['final_lr_over_max']:.2e} x max_lr (margin >= 100x); accuracy {b['final_acc']:.3f} vs {f['final_acc']:.3f}",
        series,
    )


@experiment(
    "RC203",
    "scheduler.step() before optimizer.step() (here: at the top of each epoch) skips the "
    "schedule's first value: every epoch trains at the LR meant for the next one, so the whole "
    "schedule runs one step ahead.",
    "first_epoch_lr_over_base",
    buggy_label="scheduler.step() first",
    fixed_label="optimizer.step() first",
    metric="LR of the first epoch / base LR (ExponentialLR(gamma=0.7))",
)
def scheduler_before_optimizer_step(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    lr, gamma, epochs = 0.3, 0.7, 10
    res = {}
    for label, first in (("buggy", True), ("fixed", False)):
        model = mlp(2, 3, (64,), seed=seed).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        gen = make_generator(seed + 1)
        lrs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about exactly this order; the experiment measures it
            for epoch in range(epochs):
                if first:
                    sched.step()
                lrs.append(opt.param_groups[0]["lr"])
                order = torch.randperm(len(X), generator=gen).to(device)
                for i in range(0, len(X), 30):
                    idx = order[i:i + 30]
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(model(X[idx]), y[idx]).backward()
                    opt.step()
                if not first:
                    sched.step()
        with torch.no_grad():
            final = float(F.cross_entropy(model(X), y))
        res[label] = {"first_epoch_lr_over_base": lrs[0] / lr, "_lrs": lrs, "final_loss": final,
                      "last_epoch_lr_over_base": lrs[-1] / lr}
    b, f = res["buggy"], res["fixed"]
    shifted = all(abs(x - z) <= 1e-12 for x, z in zip(b["_lrs"], f["_lrs"][1:]))
    ok = shifted and abs(b["first_epoch_lr_over_base"] - gamma) <= 1e-9 and f["first_epoch_lr_over_base"] == 1.0
    series = {"lr": {"buggy": b.pop("_lrs"), "fixed": f.pop("_lrs")}}
    return Result(
        b, f, verdict(ok),
        f"ExponentialLR(gamma={gamma}) over {epochs} epochs: the LR of epoch e is the intended LR of epoch e+1 "
        f"({'always' if shifted else 'NOT always'}; margin: exactly), first epoch at {b['first_epoch_lr_over_base']:.2f}x "
        f"the base LR vs {f['first_epoch_lr_over_base']:.2f}x; final loss {b['final_loss']:.3f} vs {f['final_loss']:.3f} "
        f"(reported, no margin: the effect on the result is a uniformly lower LR)",
        series,
    )


@experiment(
    "RC204",
    "ReduceLROnPlateau.step() without the monitored metric cannot work: current PyTorch raises "
    "TypeError at the first call, so the run crashes, while step(val_loss) reduces the LR when the "
    "metric plateaus.",
    "lr_reductions",
    buggy_label="sched.step()",
    fixed_label="sched.step(val_loss)",
    metric="number of LR reductions in 40 epochs (None: the call raised)",
)
def plateau_step_without_metric(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    split = train_val_split(X, y, 0.3, seed=seed)
    res = {}
    for label, with_metric in (("buggy", False), ("fixed", True)):
        model = mlp(2, 3, (32,), seed=seed).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        gen = make_generator(seed + 1)
        error, lrs = "", []
        for epoch in range(40):
            order = torch.randperm(len(split.X_train), generator=gen).to(device)
            for i in range(0, len(order), 10):
                idx = order[i:i + 10]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(split.X_train[idx]), split.y_train[idx]).backward()
                opt.step()
            with torch.no_grad():
                val_loss = float(F.cross_entropy(model(split.X_val), split.y_val))
            try:
                sched.step(val_loss) if with_metric else sched.step()
            except TypeError as exc:
                error = type(exc).__name__
                break
            lrs.append(opt.param_groups[0]["lr"])
        reductions = sum(1 for a, c in zip(lrs, lrs[1:]) if c < a) if not error else None
        res[label] = {"lr_reductions": reductions, "raised": error or "nothing", "epochs_run": len(lrs)}
    b, f = res["buggy"], res["fixed"]
    ok = b["raised"] == "TypeError" and (f["lr_reductions"] or 0) >= 1
    return Result(
        b, f, verdict(ok),
        f"spiral, SGD lr=0.3 momentum 0.9, batch 10, ReduceLROnPlateau(factor=0.5, patience=2) on the validation "
        f"loss: step() without the metric raised {b['raised']} after {b['epochs_run']} epochs (margin: must raise, "
        f"torch {torch.__version__}) vs {f['lr_reductions']} LR reductions in 40 epochs with step(val_loss) (margin >= 1)",
    )


def _schedule_run(sched, seed: int, device: str) -> dict:
    X, y = spiral(100, 3, seed=seed, device=device)
    model = mlp(2, 3, (64,), seed=seed)
    cfg = TrainConfig(epochs=20, batch_size=20, optimizer="sgd", lr=0.3, momentum=0.9, scheduler=sched)
    h = train(model, X, y, cfg, seed=seed, device=device, evaluate_every_epoch=False)
    return {"final_loss": h.train_loss[-1], "final_acc": h.train_acc[-1], "final_lr": h.epoch_lr[-1], "_lr": h.epoch_lr}


def _constant_vs(sched, seed: int, device: str):
    b = _schedule_run(None, seed, device)
    f = _schedule_run(sched, seed, device)
    series = {"lr": {"buggy": b.pop("_lr"), "fixed": f.pop("_lr")}}
    return b, f, series


@experiment(
    "RC205",
    "At equal budget, a constant LR ends at a higher training loss than the same run with the LR "
    "annealed (cosine to zero): mini-batch SGD stalls at a noise floor set by the LR.",
    "final_loss",
    buggy_label="constant LR",
    fixed_label="cosine annealing",
    metric="training loss after 20 epochs (SGD lr=0.3, momentum 0.9, batch 20, spiral)",
)
def no_lr_annealing(seed: int, device: str) -> Result:
    b, f, series = _constant_vs(lambda o, spe, ep: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=ep), seed, device)
    ok = b["final_loss"] >= 1.1 * f["final_loss"]
    return Result(
        b, f, verdict(ok),
        f"20 epochs x 15 batches: final training loss {b['final_loss']:.3f} at a constant LR vs {f['final_loss']:.3f} "
        f"annealed (margin: >= 1.1x); accuracy {b['final_acc']:.3f} vs {f['final_acc']:.3f}",
        series,
    )


@experiment(
    "RC207",
    "A declared LR decay that nothing reads (--lr_decay 0.1 at --decay_epoch 10) never happens: "
    "the run trains at the initial LR throughout and ends at a higher loss than with the decay it "
    "declared.",
    "final_loss",
    buggy_label="decay declared, unused",
    fixed_label="StepLR(10, 0.1) applied",
    metric="training loss after 20 epochs (SGD lr=0.3, momentum 0.9, batch 20, spiral)",
)
def declared_lr_decay_unused(seed: int, device: str) -> Result:
    b, f, series = _constant_vs(lambda o, spe, ep: torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.1),
                                seed, device)
    ok = b["final_loss"] >= 1.1 * f["final_loss"]
    return Result(
        b, f, verdict(ok),
        f"20 epochs x 15 batches: final training loss {b['final_loss']:.3f} with the decay unused vs "
        f"{f['final_loss']:.3f} with it (margin: >= 1.1x); accuracy {b['final_acc']:.3f} vs {f['final_acc']:.3f}",
        series,
    )


class _TinyTransformer(nn.Module):
    """Token + position embeddings, post-LN TransformerEncoder (PyTorch's default), mean pool, linear head."""

    def __init__(self, vocab: int, length: int, classes: int, d: int = 32, layers: int = 2, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # the encoder layers' own init (xavier inside MultiheadAttention)
            self.tok = nn.Embedding(vocab, d)
            self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
            layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.enc(self.tok(x) + self.pos).mean(1))


@experiment(
    "RC206",
    "Adam at a large LR on a small (post-LN) transformer without warmup takes its largest steps "
    "while its second-moment estimates are still poor: the early loss spikes higher and the run "
    "ends worse than the same recipe with a linear warmup.",
    "final_loss",
    buggy_label="Adam lr=1e-2, no warmup",
    fixed_label="50-step linear warmup",
    metric="training loss after 150 steps (2-layer transformer, d=32)",
)
def no_warmup_large_lr(seed: int, device: str) -> Result:
    vocab, length, classes, steps, warm = 8, 12, 4, 150, 50
    g = make_generator(seed)
    X = torch.randint(0, classes, (512, length), generator=g)
    # the label: the most frequent of the first 4 tokens (ties: the smallest), a counting task
    y = torch.stack([torch.bincount(r[r < classes], minlength=classes) for r in X]).argmax(1)
    X, y = X.to(device), y.to(device)
    res, series = {}, {"loss": {}}
    for label, warmup in (("buggy", False), ("fixed", True)):
        model = _TinyTransformer(vocab, length, classes, seed=seed).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, (lambda t: min(1.0, (t + 1) / warm)) if warmup else (lambda t: 1.0))
        order_gen = make_generator(seed + 1)
        losses = []
        for step in range(steps):
            idx = torch.randint(0, len(X), (32,), generator=order_gen).to(device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            v = float(loss.detach())
            losses.append(v if math.isfinite(v) else 1e6)
        with torch.no_grad():
            final = float(F.cross_entropy(model(X), y))
        # a spike: the loss jumping above the best loss seen so far, during the warmup window
        spike = max(losses[t] / min(losses[:t]) for t in range(5, warm))
        res[label] = {"final_loss": final if math.isfinite(final) else 1e6,
                      "early_spike": spike, "initial_loss": losses[0]}
        series["loss"][label] = losses
    b, f = res["buggy"], res["fixed"]
    ok = b["final_loss"] > f["final_loss"] and b["early_spike"] > f["early_spike"]
    return Result(
        b, f, verdict(ok),
        f"2-layer post-LN transformer (d=32), counting task, Adam lr=1e-2, batch 32, {steps} steps: largest jump of the "
        f"loss above its best so far in steps 5-{warm} {b['early_spike']:.2f}x without warmup vs {f['early_spike']:.2f}x "
        f"with it, final loss "
        f"{b['final_loss']:.3f} vs {f['final_loss']:.3f} (margin: both higher without warmup, any amount)",
        series,
    )
