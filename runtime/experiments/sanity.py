"""The sanity procedures (CS231n "babysitting the learning process") as experiments."""

from __future__ import annotations

import math

import torch
import torch.optim.lr_scheduler as lrs
from torch.nn import functional as F

from ..reference.data import DataUnavailable, blobs, digits, spiral
from ..reference.trainer import TrainConfig, mlp, small_cnn, train
from .base import Result, Skipped, experiment, verdict


@experiment(
    "sanity:initial-loss",
    "At initialization with small weights a C-class softmax classifier predicts uniformly: "
    "its first loss is ln(C); weights drawn from N(0, 1) start far above it.",
    "initial_loss",
    buggy_label="N(0,1) init",
    fixed_label="default init",
    rt_codes=("RT101",),
)
def initial_loss(seed: int, device: str) -> Result:
    classes = 10
    X, y = blobs(50, classes, dim=20, spread=1.0, center_scale=1.0, seed=seed, device=device)
    expected = math.log(classes)
    res, rt = {}, {}
    for label, init in (("buggy", "normal"), ("fixed", "default")):
        model = mlp(20, classes, (100,), init=init, seed=seed).to(device)
        with torch.no_grad():
            loss = float(F.cross_entropy(model(X), y))
        res[label] = {"initial_loss": loss, "ln_C": expected, "rel_error": abs(loss - expected) / expected}
        # one monitored full-batch step on a fresh copy: the runtime monitor judges its first loss (RT101)
        h = train(mlp(20, classes, (100,), init=init, seed=seed), X, y, TrainConfig(epochs=1, batch_size=None),
                  seed=seed, device=device, evaluate_every_epoch=False, monitor=True)
        rt[label] = h.rt_codes
    b, f = res["buggy"], res["fixed"]
    ok = f["rel_error"] <= 0.05 and b["rel_error"] >= 0.5
    return Result(
        b, f, verdict(ok),
        f"{classes} classes: first loss {f['initial_loss']:.3f} with the default init vs ln({classes}) = {expected:.3f} "
        f"(margin: within 5%); {b['initial_loss']:.3g} with N(0,1) weights (margin: >= 50% off)",
        monitor=rt,
    )


@experiment(
    "sanity:overfit-tiny",
    "With regularization off, a correct model and training loop drive the loss on a few "
    "examples to near zero; heavy regularization (or a bug) keeps it from overfitting.",
    "final_loss",
    buggy_label="L2 lambda=0.1",
    fixed_label="no regularization",
    rt_codes=("RT114",),  # the sanity suite's check (runtime/sanity.py), not a monitor check: no monitor pairing
)
def overfit_tiny(seed: int, device: str) -> Result:
    try:
        split = digits(seed=seed, image=True)
    except DataUnavailable as exc:
        raise Skipped(str(exc)) from exc
    X, y = split.X_train[:20], split.y_train[:20]
    res, series = {}, {"loss": {}}
    for label, l2 in (("buggy", 0.1), ("fixed", 0.0)):
        model = small_cnn(1, 10, seed=seed)
        cfg = TrainConfig(epochs=200, batch_size=None, optimizer="adam", lr=0.01, l2_penalty=l2)
        h = train(model, X, y, cfg, seed=seed, device=device, evaluate_every_epoch=False)
        res[label] = {"final_loss": h.loss[-1], "final_acc": h.train_acc[-1], "steps": h.steps}
        series["loss"][label] = h.loss
    b, f = res["buggy"], res["fixed"]
    ok = f["final_loss"] <= 0.01 and f["final_acc"] == 1.0 and b["final_loss"] >= 0.1
    return Result(
        b, f, verdict(ok),
        f"small CNN on 20 digits (8x8), 200 full-batch Adam steps: loss {f['final_loss']:.2e} without regularization "
        f"(margin <= 0.01, accuracy {f['final_acc']:.2f}) vs {b['final_loss']:.3g} with an L2 penalty of 0.1 (>= 0.1)",
        series,
    )


@experiment(
    "sanity:regularization-loss",
    "Adding an L2 penalty lambda*sum(W^2) raises the initial loss, monotonically in lambda "
    "(a penalty that does not raise it is not wired into the loss).",
    "initial_loss",
    buggy_label="lambda=0",
    fixed_label="lambda=1",
    rt_codes=("RT115",),  # the sanity suite's check (runtime/sanity.py), not a monitor check: no monitor pairing
)
def regularization_raises_loss(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    lambdas = (0.0, 1e-3, 1e-2, 1e-1, 1.0)
    losses = []
    for lam in lambdas:
        model = mlp(2, 3, (64,), seed=seed).to(device)
        with torch.no_grad():
            data = F.cross_entropy(model(X), y)
            penalty = sum(p.pow(2).sum() for p in model.parameters() if p.dim() >= 2)
            losses.append(float(data + lam * penalty))
    monotone = all(a < b for a, b in zip(losses, losses[1:]))
    b = {"initial_loss": losses[0], "lambda": lambdas[0]}
    f = {"initial_loss": losses[-1], "lambda": lambdas[-1]}
    for lam, loss in zip(lambdas[1:-1], losses[1:-1]):
        f[f"initial_loss_lambda_{lam:g}"] = loss
    ok = monotone and losses[-1] >= losses[0] + 1.0
    return Result(
        b, f, verdict(ok),
        "initial loss by lambda " + ", ".join(f"{lam:g}: {v:.3f}" for lam, v in zip(lambdas, losses))
        + " (margin: strictly increasing, lambda=1 at least 1.0 above lambda=0)",
        {"initial_loss": {"lambda": list(lambdas), "loss": losses}},
    )


@experiment(
    "sanity:update-ratio",
    "The update/weight ratio ||dW||/||W|| separates learning rates: at the best LR of a sweep "
    "it lies in the healthy band [1e-4, 1e-1] (heuristic: about 1e-3); a far too low LR gives "
    "a ratio below it, a far too high one kills or blows up training.",
    "update_ratio",
    buggy_label="lr=1e-4 / lr=10",
    fixed_label="best lr of sweep",
    rt_codes=(),  # not RT103: lr=1e-4 gives ~1.1e-5 (RT103 flags < 1e-5 over >= 150 steps); lr=10 kills the units (ratio 0)
)
def update_ratio(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    runs = {}
    for lr in (1e-4, 1e-2, 1.0, 10.0):
        model = mlp(2, 3, (64,), seed=seed)
        cfg = TrainConfig(epochs=15, batch_size=30, optimizer="sgd", lr=lr, record_update_ratio=True)
        h = train(model, X, y, cfg, seed=seed, device=device, evaluate_every_epoch=False)
        ratios = sorted(v for v in h.update_ratio if math.isfinite(v))
        median = ratios[len(ratios) // 2] if ratios else float("inf")
        loss = h.train_loss[-1] if math.isfinite(h.train_loss[-1]) else 1e6
        runs[lr] = {"update_ratio": median, "final_loss": loss}
    best = min(runs, key=lambda k: runs[k]["final_loss"])
    low, high = runs[1e-4], runs[10.0]
    b = {"update_ratio": low["update_ratio"], "final_loss": low["final_loss"],
         "update_ratio_lr_10": high["update_ratio"], "final_loss_lr_10": high["final_loss"]}
    f = {"update_ratio": runs[best]["update_ratio"], "final_loss": runs[best]["final_loss"], "lr": best}
    for lr, r in runs.items():
        f[f"update_ratio_lr_{lr:g}"] = r["update_ratio"]
    healthy = lambda r: 1e-4 <= r <= 1e-1  # noqa: E731
    ok = healthy(f["update_ratio"]) and not healthy(low["update_ratio"]) and not healthy(high["update_ratio"]) \
        and low["final_loss"] >= f["final_loss"] + 0.3 and high["final_loss"] >= f["final_loss"] + 0.3
    return Result(
        b, f, verdict(ok),
        "median update/weight ratio by SGD lr: " + ", ".join(f"{lr:g}: {r['update_ratio']:.2e} (loss {r['final_loss']:.3f})"
                                                             for lr, r in runs.items())
        + f"; best lr {best:g} (margins: best inside [1e-4, 1e-1], lr 1e-4 and 10 outside it and >= 0.3 worse in loss)",
    )


@experiment(
    "sanity:lr-decay-forms",
    "On the same noisy mini-batch SGD problem, step decay, exponential decay a0*exp(-kt) and "
    "1/t decay a0/(1+kt) all end at a lower loss than a constant LR.",
    "final_loss",
    buggy_label="constant lr",
    fixed_label="best decay",
    slow=True,
)
def lr_decay_forms(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    schedules = {
        "constant": None,
        "step": lambda o, spe, ep: lrs.StepLR(o, step_size=max(1, ep // 3), gamma=0.3),
        "exponential": lambda o, spe, ep: lrs.LambdaLR(o, lambda t: math.exp(-0.1 * t)),
        "1/t": lambda o, spe, ep: lrs.LambdaLR(o, lambda t: 1.0 / (1.0 + 0.5 * t)),
    }
    runs, series = {}, {"lr": {}, "train_loss": {}}
    for name, sched in schedules.items():
        model = mlp(2, 3, (64,), seed=seed)
        cfg = TrainConfig(epochs=30, batch_size=10, optimizer="sgd", lr=0.3, momentum=0.9, scheduler=sched)
        h = train(model, X, y, cfg, seed=seed, device=device)
        runs[name] = {"final_loss": h.train_loss[-1], "final_acc": h.train_acc[-1], "final_lr": h.epoch_lr[-1]}
        series["lr"][name] = h.epoch_lr
        series["train_loss"][name] = h.train_loss
    const = runs.pop("constant")
    best = min(runs, key=lambda k: runs[k]["final_loss"])
    f = {"final_loss": runs[best]["final_loss"], "schedule": best}
    for name, r in runs.items():
        f[f"final_loss_{name}"] = r["final_loss"]
        f[f"final_acc_{name}"] = r["final_acc"]
    ok = all(r["final_loss"] <= 0.9 * const["final_loss"] for r in runs.values())
    return Result(
        const, f, verdict(ok),
        f"spiral, SGD lr0=0.3 momentum 0.9, batch 10, 30 epochs: final loss constant {const['final_loss']:.3f}, "
        + ", ".join(f"{n} {r['final_loss']:.3f}" for n, r in runs.items())
        + " (margin: every decay <= 0.9x constant)",
        series,
    )
