"""RC5xx experiments: architecture and regularization layers."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..reference.data import make_generator, spiral, train_val_split
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
    metric="last BatchNorm's running variance / the variance of its input at eval time",
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
    metric="gradient norm at initialization",
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
    metric="std of the outputs over 10 eval() passes on the same inputs",
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


def _seq(layers, seed: int) -> nn.Sequential:
    with _no_global_rng():
        model = nn.Sequential(*layers())
    return init_weights(model, "default", generator=make_generator(seed))


def _fit_eval(model, X, y, seed, device, **cfg) -> dict:
    opts = dict(epochs=20, batch_size=30, optimizer="adam", lr=0.005)
    opts.update(cfg)
    h = train(model, X, y, TrainConfig(**opts), seed=seed, device=device, evaluate_every_epoch=False)
    return {"final_acc": h.train_acc[-1], "final_loss": h.train_loss[-1]}


@experiment(
    "RC502",
    "Mixing Linear -> BN -> act and Linear -> act -> BN in one model is a consistency problem, "
    "not a training one: the mixed model trains to the same accuracy as a consistent one (within "
    "0.05), so the rule is advice (info).",
    "final_acc",
    buggy_label="mixed orders",
    fixed_label="Linear -> BN -> ReLU throughout",
    metric="training accuracy after 20 Adam epochs (spiral, 2x64 BN MLP)",
)
def inconsistent_bn_activation_order(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    w = 64
    mixed = lambda: [nn.Linear(2, w), nn.BatchNorm1d(w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.BatchNorm1d(w),  # noqa: E731
                     nn.Linear(w, 3)]
    same = lambda: [nn.Linear(2, w), nn.BatchNorm1d(w), nn.ReLU(), nn.Linear(w, w), nn.BatchNorm1d(w), nn.ReLU(),  # noqa: E731
                    nn.Linear(w, 3)]
    b = _fit_eval(_seq(mixed, seed), X, y, seed, device)
    f = _fit_eval(_seq(same, seed), X, y, seed, device)
    ok = abs(b["final_acc"] - f["final_acc"]) <= 0.05
    return Result(
        b, f, verdict(ok),
        f"accuracy {b['final_acc']:.3f} mixed vs {f['final_acc']:.3f} consistent (margin: within 0.05, i.e. no "
        f"training harm); loss {b['final_loss']:.3f} vs {f['final_loss']:.3f}",
    )


@experiment(
    "RC503",
    "Dropout at a hidden-layer rate (0.5) on the raw input deletes half of the input features at "
    "every step: the model underfits compared with the same dropout placed after the first layer.",
    "final_acc",
    buggy_label="Dropout(0.5) on the input",
    fixed_label="Dropout(0.5) after the first layer",
    metric="training accuracy after 20 Adam epochs (spiral, 2x128 MLP)",
)
def dropout_on_input(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    w = 128
    on_input = lambda: [nn.Dropout(0.5), nn.Linear(2, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 3)]  # noqa: E731
    hidden = lambda: [nn.Linear(2, w), nn.ReLU(), nn.Dropout(0.5), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 3)]  # noqa: E731
    b = _fit_eval(_seq(on_input, seed), X, y, seed, device)
    f = _fit_eval(_seq(hidden, seed), X, y, seed, device)
    ok = b["final_acc"] <= f["final_acc"] - 0.1
    return Result(
        b, f, verdict(ok),
        f"accuracy {b['final_acc']:.3f} with dropout on the 2 input features vs {f['final_acc']:.3f} with it on the "
        f"first hidden layer (margin: >= 0.1 lower); loss {b['final_loss']:.3f} vs {f['final_loss']:.3f}",
    )


@experiment(
    "RC504",
    "Dropout on the model's output corrupts the logits the loss sees, with noise no layer can "
    "compensate: at equal budget the model ends at a higher loss than with the dropout before "
    "the final layer.",
    "final_loss",
    buggy_label="Dropout(0.5) on the logits",
    fixed_label="Dropout(0.5) before the last Linear",
    metric="training loss (eval mode) after 20 Adam epochs (spiral, 2x128 MLP)",
)
def dropout_on_logits(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    w = 128
    logits = lambda: [nn.Linear(2, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 3), nn.Dropout(0.5)]  # noqa: E731
    hidden = lambda: [nn.Linear(2, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Dropout(0.5), nn.Linear(w, 3)]  # noqa: E731
    b = _fit_eval(_seq(logits, seed), X, y, seed, device)
    f = _fit_eval(_seq(hidden, seed), X, y, seed, device)
    ok = b["final_loss"] >= 1.2 * f["final_loss"]
    return Result(
        b, f, verdict(ok),
        f"loss {b['final_loss']:.3f} with dropout on the logits vs {f['final_loss']:.3f} before the last layer "
        f"(margin: >= 1.2x); accuracy {b['final_acc']:.3f} vs {f['final_acc']:.3f}",
    )


@experiment(
    "RC508",
    "A dropout rate of 0.8 on hidden layers (a TensorFlow keep_prob copied as p) trains on a fifth "
    "of the units: the model underfits badly compared with p=0.2.",
    "final_acc",
    buggy_label="Dropout(0.8)",
    fixed_label="Dropout(0.2)",
    metric="training accuracy after 20 Adam epochs (spiral, 2x128 MLP)",
)
def dropout_rate_out_of_range(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    res = {}
    for label, p in (("buggy", 0.8), ("fixed", 0.2)):
        model = mlp(2, 3, (128, 128), block=("linear", "act", "dropout"), dropout=p, seed=seed)
        res[label] = _fit_eval(model, X, y, seed, device)
    b, f = res["buggy"], res["fixed"]
    ok = b["final_acc"] <= f["final_acc"] - 0.1
    return Result(
        b, f, verdict(ok),
        f"accuracy {b['final_acc']:.3f} with p=0.8 vs {f['final_acc']:.3f} with p=0.2 (margin: >= 0.1 lower); "
        f"loss {b['final_loss']:.3f} vs {f['final_loss']:.3f}",
    )


@experiment(
    "RC505",
    "A bias right before BatchNorm is cancelled by the mean subtraction: its gradient is zero up "
    "to rounding and changing it does not change the output, so it is a wasted parameter.",
    "bias_grad_over_weight_grad",
    buggy_label="Linear(bias=True) -> BN",
    fixed_label="Linear(bias=True), no BN",
    metric="gradient norm of the bias / gradient norm of the weight",
)
def bias_before_batchnorm(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    res = {}
    for label, bn in (("buggy", True), ("fixed", False)):
        layers = (lambda: [nn.Linear(2, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 3)]) if bn else \
            (lambda: [nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3)])
        model = _seq(layers, seed).to(device)
        F.cross_entropy(model(X), y).backward()
        lin = model[0]
        ratio = float(lin.bias.grad.norm() / lin.weight.grad.norm())
        with torch.no_grad():
            out0 = model(X)
            lin.bias.add_(1.0)
            shift = float((model(X) - out0).abs().max())
        res[label] = {"bias_grad_over_weight_grad": ratio, "output_change_bias_plus_1": shift}
    b, f = res["buggy"], res["fixed"]
    ok = b["bias_grad_over_weight_grad"] <= 1e-5 and b["output_change_bias_plus_1"] <= 1e-4 \
        and f["bias_grad_over_weight_grad"] >= 0.01
    return Result(
        b, f, verdict(ok),
        f"||grad bias|| / ||grad weight|| = {b['bias_grad_over_weight_grad']:.2e} before BN (margin <= 1e-5) vs "
        f"{f['bias_grad_over_weight_grad']:.3g} without BN; adding 1 to every bias changes the output by "
        f"{b['output_change_bias_plus_1']:.1e} (margin <= 1e-4) vs {f['output_change_bias_plus_1']:.3g}",
    )


@experiment(
    "RC509",
    "BatchNorm trained with batches of 4 normalizes with very noisy batch statistics, so the "
    "running statistics used at evaluation disagree with what training saw: the eval-mode "
    "accuracy falls below the same model trained with batches of 32.",
    "eval_acc",
    buggy_label="batch_size=4",
    fixed_label="batch_size=32",
    metric="eval-mode accuracy on a held-out split after 10 epochs (spiral, BN MLP)",
)
def batchnorm_tiny_batch(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    split = train_val_split(X, y, 0.3, seed=seed)
    res = {}
    for label, bs in (("buggy", 4), ("fixed", 32)):
        model = mlp(2, 3, (64, 64), block=("linear", "bn", "act"), seed=seed)
        h = train(model, split.X_train, split.y_train, TrainConfig(epochs=10, batch_size=bs, optimizer="adam", lr=0.005),
                  X_val=split.X_val, y_val=split.y_val, seed=seed, device=device, evaluate_every_epoch=False)
        model.train()
        with torch.no_grad():  # the same data normalized with batch statistics (train mode, batch of bs)
            train_mode = sum(int((model(split.X_val[i:i + bs]).argmax(1) == split.y_val[i:i + bs]).sum())
                             for i in range(0, len(split.X_val), bs)) / len(split.X_val)
        model.eval()
        res[label] = {"eval_acc": h.val_acc[-1], "train_mode_acc": train_mode}
    b, f = res["buggy"], res["fixed"]
    ok = b["eval_acc"] <= f["eval_acc"] - 0.05
    return Result(
        b, f, verdict(ok),
        f"held-out accuracy in eval mode {b['eval_acc']:.3f} with batches of 4 vs {f['eval_acc']:.3f} with 32 "
        f"(margin: >= 0.05 lower); the same data in train mode (batch statistics) {b['train_mode_acc']:.3f} vs "
        f"{f['train_mode_acc']:.3f}",
    )


@experiment(
    "RC510",
    "In a deep stack of sigmoid layers without normalization each layer multiplies the backward "
    "signal by at most 0.25: the first layer's relative gradient is orders of magnitude below the "
    "last one's (vanishing gradients), while BatchNorm between the layers keeps them comparable.",
    "first_over_last_rel_grad",
    buggy_label="8 x (Linear -> Sigmoid)",
    fixed_label="8 x (Linear -> BN -> Sigmoid)",
    rt_codes=("RT108",),
    metric="relative gradient ||g||/||w|| of the first layer / the last hidden layer's, at init",
)
def saturating_activation_deep_stack(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    res, rt = {}, {}
    for label, block in (("buggy", ("linear", "act")), ("fixed", ("linear", "bn", "act"))):
        model = mlp(2, 3, (64,) * 8, activation="sigmoid", block=block, seed=seed).to(device)
        F.cross_entropy(model(X), y).backward()
        lins = [m for m in model if isinstance(m, nn.Linear)]
        rel = [float(m.weight.grad.norm() / m.weight.detach().norm()) for m in lins[:-1]]
        model.zero_grad()
        h = train(model, X, y, TrainConfig(epochs=3, batch_size=30, optimizer="sgd", lr=0.1), seed=seed, device=device,
                  evaluate_every_epoch=False, monitor=True)
        rt[label] = h.rt_codes
        res[label] = {"first_over_last_rel_grad": rel[0] / rel[-1], "final_loss": h.train_loss[-1]}
    b, f = res["buggy"], res["fixed"]
    ok = b["first_over_last_rel_grad"] <= 1e-3 and f["first_over_last_rel_grad"] >= 1e-1
    return Result(
        b, f, verdict(ok),
        f"8 sigmoid layers of width 64: first/last relative gradient {b['first_over_last_rel_grad']:.2e} (margin <= 1e-3) "
        f"vs {f['first_over_last_rel_grad']:.3g} with BatchNorm (margin >= 0.1)",
        monitor=rt,
    )


@experiment(
    "RC511",
    "BatchNorm1d(C, 0.9) sets eps=0.9, not momentum: the normalization divides by sqrt(var + 0.9), "
    "so for small pre-activations the output is squashed far below unit variance and the layer no "
    "longer normalizes.",
    "bn_output_std",
    buggy_label="BatchNorm1d(64, 0.9)",
    fixed_label="BatchNorm1d(64, momentum=0.9)",
    metric="std of the BatchNorm output at init (spiral inputs, default init)",
)
def batchnorm_positional_eps(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    res = {}
    for label, kwargs in (("buggy", {"eps": 0.9}), ("fixed", {"momentum": 0.9})):
        build = lambda: [nn.Linear(2, 64), nn.BatchNorm1d(64, **kwargs), nn.ReLU(), nn.Linear(64, 64),  # noqa: E731
                         nn.BatchNorm1d(64, **kwargs), nn.ReLU(), nn.Linear(64, 3)]
        model = _seq(build, seed).to(device)
        with torch.no_grad():
            std = float(model[1](model[0](X)).std(0).mean())
        fit = _fit_eval(model, X, y, seed, device, lr=0.01)
        res[label] = {"bn_output_std": std, **fit}
    b, f = res["buggy"], res["fixed"]
    ok = b["bn_output_std"] <= 0.7 and f["bn_output_std"] >= 0.95
    return Result(
        b, f, verdict(ok),
        f"first BatchNorm's output std {b['bn_output_std']:.3f} with eps=0.9 (margin <= 0.7) vs {f['bn_output_std']:.3f} "
        f"(margin >= 0.95); accuracy after 20 Adam epochs {b['final_acc']:.3f} vs {f['final_acc']:.3f} (reported)",
    )
