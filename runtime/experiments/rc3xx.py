"""RC3xx experiments: weight initialization."""

from __future__ import annotations

import math
import warnings

import torch

from ..reference.data import make_generator, spiral
from ..reference.trainer import TrainConfig, hidden_activations, init_weights, mlp, train
from .base import Result, experiment, verdict

_RECIPE = dict(epochs=20, batch_size=30, optimizer="sgd", lr=0.5, momentum=0.9)
_HIDDEN = 64


def _symmetry_run(init, seed: int, device: str) -> dict:
    X, y = spiral(100, 3, seed=seed, device=device)
    model = mlp(2, 3, (_HIDDEN,), init=init, seed=seed)
    h = train(model, X, y, TrainConfig(**_RECIPE), seed=seed, device=device, monitor=True)
    acts = hidden_activations(model, X, 1)  # after the ReLU
    w = model[0].weight.detach()  # hidden layer: (64, 2)
    return {
        "hidden_rank": int(torch.linalg.matrix_rank(acts.double().cpu())),
        "max_row_spread": float((w - w[0]).abs().max()),
        "final_acc": h.train_acc[-1],
        "final_loss": h.train_loss[-1],
        "_loss": h.loss,
        "_rt": h.rt_codes,
    }


def _split(res: dict) -> tuple[dict, dict]:
    return {k: v for k, v in res.items() if not k.startswith("_")}, res


@experiment(
    "RC301",
    "Zero-initialized weights give every hidden unit the same value and a zero gradient: "
    "the hidden layers never learn (activation rank 0) and accuracy stays at chance.",
    "final_acc",
    buggy_label="zeros_ init",
    fixed_label="default init",
    rt_codes=("RT109",),
    metric="training accuracy after 200 SGD steps (3-class spiral, chance 0.33)",
)
def zero_init(seed: int, device: str) -> Result:
    b, bs = _split(_symmetry_run("zeros", seed, device))
    f, fs = _split(_symmetry_run("default", seed, device))
    chance = 1 / 3
    ok = b["hidden_rank"] <= 1 and b["final_acc"] <= chance + 0.1 and f["hidden_rank"] >= _HIDDEN // 4 \
        and f["final_acc"] >= 0.85
    return Result(
        b, f, verdict(ok),
        f"{_HIDDEN}-unit ReLU MLP on 3-class spiral, 200 SGD steps: hidden activation rank {b['hidden_rank']} "
        f"(margin <= 1) vs {f['hidden_rank']} (>= {_HIDDEN // 4}); accuracy {b['final_acc']:.3f} (<= chance+0.1) "
        f"vs {f['final_acc']:.3f} (>= 0.85)",
        {"loss": {"buggy": bs["_loss"], "fixed": fs["_loss"]}}, monitor={"buggy": bs["_rt"], "fixed": fs["_rt"]},
    )


@experiment(
    "RC302",
    "A constant weight init never breaks symmetry: every unit of a layer keeps identical "
    "weights through training (rank-1 hidden activations) and the network fits like a one-unit model.",
    "max_row_spread",
    buggy_label="constant_(w, 0.1)",
    fixed_label="default init",
    rt_codes=("RT109",),
    metric="largest difference between rows of the hidden weight after 200 SGD steps",
)
def constant_init(seed: int, device: str) -> Result:
    b, bs = _split(_symmetry_run(0.1, seed, device))
    f, fs = _split(_symmetry_run("default", seed, device))
    ok = b["max_row_spread"] <= 1e-6 and b["hidden_rank"] <= 1 and f["max_row_spread"] >= 0.1 \
        and f["hidden_rank"] >= _HIDDEN // 4 and f["final_acc"] >= b["final_acc"] + 0.2
    return Result(
        b, f, verdict(ok),
        f"after 200 SGD steps the rows of the hidden weight matrix differ by at most {b['max_row_spread']:.2g} "
        f"(margin <= 1e-6) vs {f['max_row_spread']:.3g}; hidden rank {b['hidden_rank']} vs {f['hidden_rank']}; "
        f"accuracy {b['final_acc']:.3f} vs {f['final_acc']:.3f} (margin >= 0.2)",
        {"loss": {"buggy": bs["_loss"], "fixed": fs["_loss"]}}, monitor={"buggy": bs["_rt"], "fixed": fs["_rt"]},
    )


@experiment(
    "RC303",
    "Weights drawn from N(0, 1) ignore fan-in: in a deep ReLU MLP each layer multiplies the "
    "activation scale by about sqrt(fan_in/2), so it explodes with depth; fan-in scaled (Kaiming) init keeps it constant.",
    "last_over_first_std",
    buggy_label="normal_(w, 0, 1)",
    fixed_label="N(0, 2/fan_in)",
    metric="activation std at layer 10 / at layer 1 (ReLU MLP, width 256)",
)
def uncalibrated_init(seed: int, device: str) -> Result:
    depth, width = 10, 256
    g = make_generator(seed)
    X = torch.randn(512, width, generator=g).to(device)
    res, series = {}, {"activation_std": {}}
    for label, init in (("buggy", "normal"), ("fixed", "kaiming")):
        model = mlp(width, 10, (width,) * depth, init=init, seed=seed).to(device)
        stds = []
        h = X
        with torch.no_grad():
            for layer in model:
                h = layer(h)
                if isinstance(layer, torch.nn.ReLU):
                    stds.append(float(h.std()))
            loss0 = float(torch.nn.functional.cross_entropy(h, torch.zeros(len(h), dtype=torch.long, device=device)))
        res[label] = {
            "first_std": stds[0],
            "last_std": stds[-1],
            "last_over_first_std": stds[-1] / stds[0],
            "log10_growth_per_layer": math.log10(stds[-1] / stds[0]) / (depth - 1),
            "initial_loss": loss0,
        }
        series["activation_std"][label] = stds
    b, f = res["buggy"], res["fixed"]
    ok = b["last_over_first_std"] >= 1e6 and 0.2 <= f["last_over_first_std"] <= 5
    return Result(
        b, f, verdict(ok),
        f"{depth} ReLU layers of width {width}: activation std grows {b['last_over_first_std']:.2e}x from layer 1 "
        f"to {depth} with N(0,1) (margin >= 1e6; about sqrt({width}/2)={math.sqrt(width / 2):.1f}x per layer) vs "
        f"{f['last_over_first_std']:.2f}x with fan-in scaling (within [0.2, 5]); initial loss {b['initial_loss']:.3g} "
        f"vs {f['initial_loss']:.3g}",
        series,
    )


def _std_through_depth(init, X: torch.Tensor, depth: int, width: int, seed: int, activation: str = "relu") -> list[float]:
    model = mlp(width, 10, (width,) * depth, init=init, activation=activation, seed=seed).to(X.device)
    stds, h = [], X
    with torch.no_grad():
        for layer in model:
            h = layer(h)
            if not isinstance(layer, torch.nn.Linear):
                stds.append(float(h.std()))
    return stds


@experiment(
    "RC304",
    "Xavier/Glorot init assumes a symmetric activation; behind ReLU, which zeroes half of the "
    "signal, it loses about half of the activation variance per layer (std x 0.71), so the "
    "signal fades with depth, while Kaiming init keeps it constant.",
    "std_factor_per_layer",
    buggy_label="Xavier in a ReLU MLP",
    fixed_label="Kaiming in a ReLU MLP",
    metric="activation std factor per layer (10 ReLU layers of width 256)",
)
def init_activation_mismatch(seed: int, device: str) -> Result:
    depth, width = 10, 256
    X = torch.randn(512, width, generator=make_generator(seed)).to(device)
    res, series = {}, {"activation_std": {}}
    for label, init in (("buggy", "xavier"), ("fixed", "kaiming")):
        stds = _std_through_depth(init, X, depth, width, seed)
        res[label] = {"std_factor_per_layer": (stds[-1] / stds[0]) ** (1 / (depth - 1)),
                      "last_over_first_std": stds[-1] / stds[0]}
        series["activation_std"][label] = stds
    b, f = res["buggy"], res["fixed"]
    ok = 0.6 <= b["std_factor_per_layer"] <= 0.8 and 0.85 <= f["std_factor_per_layer"] <= 1.15
    return Result(
        b, f, verdict(ok),
        f"{depth} ReLU layers of width {width}: the activation std changes by {b['std_factor_per_layer']:.3f}x per layer "
        f"with Xavier (theory 1/sqrt(2) = 0.707; margin 0.6-0.8), {b['last_over_first_std']:.3g}x over the stack, vs "
        f"{f['std_factor_per_layer']:.3f}x with Kaiming (margin 0.85-1.15)",
        series,
    )


class _EmptyInitMLP(torch.nn.Module):
    """2 -> 64 -> 64 -> 3 ReLU MLP whose middle weight is ``nn.Parameter(torch.empty(64, 64))`` (never filled)
    or drawn by the default init."""

    def __init__(self, empty: bool, seed: int):
        super().__init__()
        self.fc1 = torch.nn.Linear(2, 64)
        self.w2 = torch.nn.Parameter(torch.empty(64, 64))
        self.b2 = torch.nn.Parameter(torch.zeros(64))
        self.fc3 = torch.nn.Linear(64, 3)
        g = make_generator(seed)
        init_weights(self, "default", generator=g)
        if not empty:
            with torch.no_grad():
                self.w2.copy_(torch.empty(64, 64).uniform_(-1 / 8, 1 / 8, generator=g))

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = torch.relu(h @ self.w2.t() + self.b2)
        return self.fc3(h)


def _memory_history(value: float) -> None:
    """What a script did before building the model: tensors of the weight's size come and go."""
    junk = [torch.full((64, 64), value) for _ in range(8)]
    del junk


def _weight_after(history: float, empty: bool, seed: int) -> torch.Tensor:
    _memory_history(history)
    return _EmptyInitMLP(empty, seed).w2.detach().clone()


@experiment(
    "RC305",
    "A parameter made from torch.empty(...) and never filled starts from whatever the allocator "
    "returns (zeros, stale values of freed tensors, or garbage): the same seed gives a different "
    "initial weight when the memory history differs, and the values are often degenerate.",
    "memory_dependent_or_degenerate",
    buggy_label="nn.Parameter(torch.empty(64, 64))",
    fixed_label="initialized",
    metric="whether the initial weight changes with the memory history or is degenerate (>= 50% one value, |w| > 1e3, non-finite)",
)
def uninitialized_parameter(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    res = {}
    for label, empty in (("buggy", True), ("fixed", False)):
        w_a = _weight_after(1.0, empty, seed)
        w_b = _weight_after(2.0, empty, seed)
        differs = not torch.equal(w_a.nan_to_num(), w_b.nan_to_num())
        model = _EmptyInitMLP(empty, seed)
        w = model.w2.detach().clone()
        finite = bool(torch.isfinite(w).all())
        _, counts = torch.unique(w, return_counts=True)
        repeated = float(counts.max()) / w.numel()
        big = float(w.abs().max()) if finite else float("inf")
        degenerate = (not finite) or repeated >= 0.5 or big > 1e3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h = train(model, X, y, TrainConfig(**_RECIPE), seed=seed, device=device)
        acc = h.train_acc[-1] if math.isfinite(h.train_loss[-1]) else 1 / 3
        res[label] = {
            "memory_dependent_or_degenerate": differs or degenerate,
            "differs_with_memory_history": differs,
            "degenerate": degenerate,
            "most_repeated_value_share": repeated,
            "max_abs_weight": big if math.isfinite(big) else 1e38,
            "final_acc": acc,
        }
    b, f = res["buggy"], res["fixed"]
    ok = b["memory_dependent_or_degenerate"] and not f["memory_dependent_or_degenerate"]
    return Result(
        b, f, verdict(ok),
        f"torch.empty(64, 64) as the middle weight of a 3-layer MLP, built twice with the same seed after different "
        f"allocations: the initial weight differs between the two: {b['differs_with_memory_history']} (initialized: "
        f"{f['differs_with_memory_history']}); degenerate: {b['degenerate']} ({b['most_repeated_value_share']:.0%} of "
        f"its entries share one value, max |w| {b['max_abs_weight']:.3g}) vs {f['degenerate']} (margin: one of the two "
        f"must hold for the empty weight, neither for the initialized one); accuracy after 200 SGD steps "
        f"{b['final_acc']:.3f} vs {f['final_acc']:.3f} (reported)",
    )
