"""RC2xx experiments: learning-rate schedules stepped at the wrong interval."""

from __future__ import annotations

import torch

from ..reference.data import spiral
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
