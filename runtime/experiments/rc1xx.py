"""RC1xx experiments: the training step (zero_grad placement, gradient accumulation)."""

from __future__ import annotations

from ..reference.data import spiral
from ..reference.trainer import TrainConfig, mlp, parameter_vector, train
from .base import Result, experiment, verdict


def _data(seed: int, device: str):
    return spiral(100, 3, seed=seed, device=device)


@experiment(
    "RC101",
    "Without zero_grad() the gradient that step() sees is the running sum of every past "
    "gradient: its norm grows with the step count instead of staying at the per-batch scale.",
    "grad_norm_growth",
    buggy_label="no zero_grad",
    fixed_label="zero_grad each step",
    rt_codes=("RT104",),
)
def missing_zero_grad(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    res, rt = {}, {}
    series = {"grad_norm": {}}
    for label, zg in (("buggy", "never"), ("fixed", "before_backward")):
        model = mlp(2, 3, (64,), seed=seed)
        cfg = TrainConfig(epochs=2, batch_size=30, optimizer="sgd", lr=0.01, zero_grad=zg)
        h = train(model, X, y, cfg, seed=seed, device=device, monitor=True)
        rt[label] = h.rt_codes
        growth = sum(h.grad_norm[-3:]) / 3 / h.grad_norm[0]
        res[label] = {
            "grad_norm_growth": growth,
            "first_grad_norm": h.grad_norm[0],
            "last_grad_norm": h.grad_norm[-1],
            "steps": h.steps,
        }
        series["grad_norm"][label] = h.grad_norm
    ok = res["buggy"]["grad_norm_growth"] >= 5.0 and res["fixed"]["grad_norm_growth"] <= 2.0
    return Result(
        res["buggy"], res["fixed"], verdict(ok),
        f"after {res['buggy']['steps']} SGD steps the step() gradient norm is "
        f"{res['buggy']['grad_norm_growth']:.1f}x its first value without zero_grad "
        f"(margin >= 5x) vs {res['fixed']['grad_norm_growth']:.2f}x with it (margin <= 2x)",
        series, monitor=rt,
    )


@experiment(
    "RC102",
    "zero_grad() between backward() and step() hands step() empty gradients: "
    "the parameters never move and the loss never changes.",
    "param_change",
    buggy_label="zero_grad after backward",
    fixed_label="zero_grad before backward",
)
def zero_grad_before_step(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    res = {}
    series = {"loss": {}}
    for label, zg in (("buggy", "between_backward_and_step"), ("fixed", "before_backward")):
        model = mlp(2, 3, (64,), seed=seed)
        p0 = parameter_vector(model).to(device)
        cfg = TrainConfig(epochs=3, batch_size=30, optimizer="sgd", lr=0.1, momentum=0.9, zero_grad=zg)
        h = train(model, X, y, cfg, seed=seed, device=device)
        res[label] = {
            "param_change": float((parameter_vector(model) - p0).norm()),
            "loss_drop": h.train_loss[0] - h.train_loss[-1],
            "final_loss": h.train_loss[-1],
        }
        series["loss"][label] = h.loss
    ok = res["buggy"]["param_change"] == 0.0 and res["fixed"]["param_change"] > 0.1 and res["fixed"]["loss_drop"] > 0.01
    return Result(
        res["buggy"], res["fixed"], verdict(ok),
        f"||theta_T - theta_0|| = {res['buggy']['param_change']:.3g} with zero_grad between backward and step "
        f"(must be exactly 0) vs {res['fixed']['param_change']:.3g} (margin > 0.1)",
        series,
    )


@experiment(
    "RC105",
    "Accumulating k micro-batch gradients without dividing the loss by k makes each update "
    "k times the large-batch update it is meant to equal.",
    "update_over_large_batch",
    buggy_label="loss not / k",
    fixed_label="loss / k",
)
def accumulation_unscaled(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    k, bs = 4, 30
    # the update the accumulation is meant to reproduce: one step on the k*bs examples at once
    ref = mlp(2, 3, (64,), seed=seed)
    p0 = parameter_vector(ref).to(device)
    train(ref, X[: k * bs], y[: k * bs], TrainConfig(epochs=1, batch_size=k * bs, lr=0.1, shuffle=False, max_steps=1),
          seed=seed, device=device)
    big = float((parameter_vector(ref) - p0).norm())
    res = {}
    for label, scale in (("buggy", False), ("fixed", True)):
        model = mlp(2, 3, (64,), seed=seed)
        cfg = TrainConfig(epochs=1, batch_size=bs, lr=0.1, shuffle=False, accumulation_steps=k,
                          scale_accumulated_loss=scale, max_steps=1)
        train(model, X, y, cfg, seed=seed, device=device)
        upd = float((parameter_vector(model) - p0).norm())
        res[label] = {"update_norm": upd, "update_over_large_batch": upd / big, "k": k}
    ok = abs(res["buggy"]["update_over_large_batch"] - k) < 0.05 * k and abs(res["fixed"]["update_over_large_batch"] - 1) < 0.01
    return Result(
        res["buggy"], res["fixed"], verdict(ok),
        f"k={k}: unscaled update = {res['buggy']['update_over_large_batch']:.3f}x the {k * bs}-example update "
        f"(margin: within 5% of {k}) vs {res['fixed']['update_over_large_batch']:.4f}x scaled (within 1% of 1)",
    )
