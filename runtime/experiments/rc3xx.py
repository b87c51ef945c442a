"""RC3xx experiments: weight initialization."""

from __future__ import annotations

import math

import torch

from ..reference.data import make_generator, spiral
from ..reference.trainer import TrainConfig, hidden_activations, mlp, train
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
