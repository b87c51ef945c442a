"""RC5xx experiments: architecture and regularization layers."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..reference.data import make_generator, spiral
from ..reference.trainer import TrainConfig, _no_global_rng, init_weights, mlp, seeded_global_rng, train
from .base import Result, experiment, verdict


def _bn_mlp(dropout_before_bn: bool, seed: int, width: int = 128, p: float = 0.5) -> nn.Sequential:
    with _no_global_rng():
        if dropout_before_bn:  # Linear -> ReLU -> Dropout -> BN, twice
            layers = [nn.Linear(2, width), nn.ReLU(), nn.Dropout(p), nn.BatchNorm1d(width),
                      nn.Linear(width, width), nn.ReLU(), nn.Dropout(p), nn.BatchNorm1d(width),
                      nn.Linear(width, 3)]
        else:  # Linear -> BN -> ReLU, twice; Dropout only after the last BN (Li et al. 2019)
            layers = [nn.Linear(2, width), nn.BatchNorm1d(width), nn.ReLU(),
                      nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(p),
                      nn.Linear(width, 3)]
        model = nn.Sequential(*layers)
    return init_weights(model, "default", generator=make_generator(seed))


def _variance_shift(model: nn.Sequential, X: torch.Tensor) -> float:
    """Mean over BN channels of running_var / (variance of the BN input at eval time), last BN layer."""
    bn = [m for m in model if isinstance(m, nn.BatchNorm1d)][-1]
    seen = {}
    handle = bn.register_forward_hook(lambda mod, inp, out: seen.__setitem__("x", inp[0].detach()))
    model.eval()
    with torch.no_grad():
        model(X)
    handle.remove()
    actual = seen["x"].var(0, unbiased=True)
    return float((bn.running_var / (actual + bn.eps)).mean())


@experiment(
    "RC501",
    "Dropout feeding BatchNorm makes BN's running variance (collected with dropout on) "
    "disagree with the variance it sees at eval time (dropout off): a train/eval variance shift.",
    "running_var_over_eval_var",
    buggy_label="Dropout -> BN",
    fixed_label="BN, Dropout after last BN",
)
def dropout_before_bn(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    res, series = {}, {"loss": {}}
    for label, before in (("buggy", True), ("fixed", False)):
        model = _bn_mlp(before, seed)
        cfg = TrainConfig(epochs=30, batch_size=30, optimizer="adam", lr=0.005)
        h = train(model, X, y, cfg, seed=seed, device=device)
        res[label] = {
            "running_var_over_eval_var": _variance_shift(model, X),
            "eval_acc": h.train_acc[-1],
        }
        series["loss"][label] = h.loss
    b, f = res["buggy"], res["fixed"]
    ok = b["running_var_over_eval_var"] >= 1.3 and abs(f["running_var_over_eval_var"] - 1) <= 0.15
    return Result(
        b, f, verdict(ok),
        f"spiral, 2x128 MLP, p=0.5: last BN's running_var / eval-time input variance = "
        f"{b['running_var_over_eval_var']:.2f} with Dropout -> BN (margin >= 1.3) vs "
        f"{f['running_var_over_eval_var']:.2f} (within 0.15 of 1); eval accuracy {b['eval_acc']:.3f} vs {f['eval_acc']:.3f}",
        series,
    )


@experiment(
    "RC506",
    "softmax before CrossEntropyLoss (double softmax) squashes the logits into [0, 1]: the "
    "gradients shrink several-fold and the model learns far more slowly at the same LR.",
    "init_grad_norm",
    buggy_label="CE(softmax(z))",
    fixed_label="CE(z)",
)
def double_softmax(seed: int, device: str) -> Result:
    classes = 5
    X, y = spiral(60, classes, seed=seed, device=device)
    res, series = {}, {"loss": {}}
    for label, transform in (("buggy", lambda z: F.softmax(z, dim=1)), ("fixed", None)):
        model = mlp(2, classes, (64,), seed=seed).to(device)
        model.zero_grad()
        out = model(X)
        F.cross_entropy(transform(out) if transform else out, y).backward()
        g0 = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters())))
        model.zero_grad()
        cfg = TrainConfig(epochs=20, batch_size=30, optimizer="sgd", lr=0.2, momentum=0.9, output_transform=transform)
        h = train(model, X, y, cfg, seed=seed, device=device)
        with torch.no_grad():
            logits = model.eval()(X)
        res[label] = {
            "init_grad_norm": g0,
            "mean_grad_norm": sum(h.grad_norm) / len(h.grad_norm),
            "final_acc": float((logits.argmax(1) == y).float().mean()),
            "final_ce_on_logits": float(F.cross_entropy(logits, y)),
        }
        series["loss"][label] = h.loss
    b, f = res["buggy"], res["fixed"]
    ratio = f["init_grad_norm"] / b["init_grad_norm"]
    ok = ratio >= 3 and f["final_acc"] >= b["final_acc"] + 0.1
    return Result(
        b, f, verdict(ok),
        f"5-class spiral, 200 SGD steps: gradient norm at init {b['init_grad_norm']:.3g} vs {f['init_grad_norm']:.3g} "
        f"({ratio:.1f}x smaller; margin >= 3x); accuracy {b['final_acc']:.3f} vs {f['final_acc']:.3f} (margin >= 0.1)",
        series,
    )


class _FunctionalDropoutMLP(nn.Module):
    """An MLP that calls ``F.dropout`` in ``forward``, with or without ``training=self.training``."""

    def __init__(self, always_on: bool, seed: int, p: float = 0.5):
        super().__init__()
        with _no_global_rng():
            self.fc1, self.fc2 = nn.Linear(2, 128), nn.Linear(128, 3)
        init_weights(self, "default", generator=make_generator(seed))
        self.always_on, self.p = always_on, p

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = F.dropout(h, self.p) if self.always_on else F.dropout(h, self.p, training=self.training)
        return self.fc2(h)


@experiment(
    "RC507",
    "F.dropout(x, p) without training=self.training stays on after model.eval(): predictions "
    "at evaluation are random: repeated evaluations of the same inputs disagree.",
    "eval_output_std",
    buggy_label="F.dropout(h, p)",
    fixed_label="training=self.training",
)
def functional_dropout_always_on(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    res = {}
    for label, always in (("buggy", True), ("fixed", False)):
        model = _FunctionalDropoutMLP(always, seed)
        train(model, X, y, TrainConfig(epochs=30, batch_size=30, optimizer="adam", lr=0.01), seed=seed, device=device)
        model.eval()
        outs, accs = [], []
        with seeded_global_rng(seed + 1, device), torch.no_grad():
            for _ in range(10):
                out = model(X)
                outs.append(out)
                accs.append(float((out.argmax(1) == y).float().mean()))
        stack = torch.stack(outs)
        res[label] = {
            "eval_output_std": float(stack.std(0).mean()),
            "eval_acc_min": min(accs),
            "eval_acc_max": max(accs),
            "eval_acc_mean": sum(accs) / len(accs),
        }
    b, f = res["buggy"], res["fixed"]
    ok = b["eval_output_std"] >= 0.05 and f["eval_output_std"] == 0.0 and b["eval_acc_max"] > b["eval_acc_min"] \
        and f["eval_acc_max"] == f["eval_acc_min"]
    return Result(
        b, f, verdict(ok),
        f"10 eval() passes over the same 300 inputs: mean output std {b['eval_output_std']:.3g} (margin >= 0.05) vs "
        f"{f['eval_output_std']:.3g} (must be 0); accuracy {b['eval_acc_min']:.3f}-{b['eval_acc_max']:.3f} vs "
        f"{f['eval_acc_mean']:.3f} every time",
    )
