"""RC1xx experiments: the training step (zero_grad placement, gradient accumulation)."""

from __future__ import annotations

import gc
from typing import Optional

import torch
from torch.nn import functional as F

from ..reference.data import make_generator, spiral
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
    metric="gradient norm seen by step() after 20 SGD steps / its first value",
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
    metric="||theta_T - theta_0|| after 3 epochs of SGD",
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
    metric="update norm / the norm of the one large-batch update it should equal (k=4)",
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


# --------------------------------------------------------------------------------------------
# Hand-written loops for the step-order bugs the trainer does not model: each is the loop a
# training script would contain, so the measurements are torch's real mechanics.

def _batches(X, y, bs: int, seed: int):
    """Shuffled mini-batches of one epoch (order from a generator seeded by ``seed``)."""
    order = torch.randperm(len(X), generator=make_generator(seed + 1)).to(X.device)
    return [(X[order[i:i + bs]], y[order[i:i + bs]]) for i in range(0, len(X), bs)]


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.detach().reshape(-1) for p in model.parameters()])


@experiment(
    "RC103",
    "A loop that calls backward() but never optimizer.step() computes gradients and throws them "
    "away: the parameters never move and the loss stays where it started.",
    "loss_drop",
    buggy_label="no optimizer.step()",
    fixed_label="optimizer.step()",
    metric="drop of the training loss over 3 epochs",
)
def missing_optimizer_step(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    res = {}
    for label, do_step in (("buggy", False), ("fixed", True)):
        model = mlp(2, 3, (64,), seed=seed).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        p0 = parameter_vector(model)
        first = F.cross_entropy(model(X), y).item()
        for epoch in range(3):
            for xb, yb in _batches(X, y, 30, seed + epoch):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                if do_step:
                    opt.step()
        with torch.no_grad():
            last = F.cross_entropy(model(X), y).item()
        res[label] = {"loss_drop": first - last, "param_change": float((parameter_vector(model) - p0).norm()),
                      "final_loss": last}
    b, f = res["buggy"], res["fixed"]
    ok = b["param_change"] == 0.0 and b["loss_drop"] == 0.0 and f["loss_drop"] >= 0.05
    return Result(
        b, f, verdict(ok),
        f"3 epochs of 10 batches, SGD lr=0.1 momentum 0.9: the full-data loss drops by {b['loss_drop']:.3g} without "
        f"step() (must be exactly 0; parameters moved {b['param_change']:.3g}) vs {f['loss_drop']:.3g} with it "
        f"(margin >= 0.05)",
    )


def _count_graph_nodes(t: torch.Tensor) -> int:
    seen, stack = set(), [t.grad_fn] if t.grad_fn is not None else []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return len(seen)


class _Saved:
    """What autograd stores for a saved tensor while the hooks are on: it lives exactly as long as
    the graph that saved it, and keeps a count of the bytes graphs are holding."""

    live = 0

    def __init__(self, t: torch.Tensor, params: set):
        # detached alias: holding ``t`` itself would tie an output to its own grad_fn (a cycle
        # through C++ that gc cannot break); only used for graphs that never run backward
        self.t = t.detach()
        self.nbytes = 0 if t.data_ptr() in params else t.numel() * t.element_size()
        _Saved.live += self.nbytes

    def __del__(self):
        _Saved.live -= self.nbytes


def _retained_bytes(loop, model) -> int:
    """Bytes of tensors (parameters excluded) that autograd graphs still hold after ``loop()`` returns."""
    params = {p.data_ptr() for p in model.parameters()}
    start = _Saved.live
    with torch.autograd.graph.saved_tensors_hooks(lambda t: _Saved(t, params), lambda s: s.t):
        keep = loop()
    gc.collect()
    held = _Saved.live - start
    del keep
    gc.collect()
    return held


@experiment(
    "RC104",
    "A running total that adds the loss tensor itself (total += loss) chains every iteration's "
    "autograd graph to it: in an evaluation loop without no_grad every batch's activations stay in "
    "memory, growing linearly with the iterations, and in a training loop the graph nodes pile up; "
    "total += loss.item() keeps nothing.",
    "retained_bytes_40",
    buggy_label="total += loss",
    fixed_label="total += loss.item()",
    metric="bytes of activations still held after 40 evaluation batches",
)
def loss_accumulated_with_graph(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    res = {}
    for label, keep_graph in (("buggy", True), ("fixed", False)):
        model = mlp(2, 3, (256, 256), seed=seed).to(device)
        out = {}
        for iters in (10, 40):
            def eval_loop(iters=iters):  # a validation loop written without torch.no_grad()
                total = 0.0
                for i in range(iters):
                    xb, yb = X[(i * 30) % 300:(i * 30) % 300 + 30], y[(i * 30) % 300:(i * 30) % 300 + 30]
                    loss = F.cross_entropy(model(xb), yb)
                    total = total + (loss if keep_graph else loss.item())
                return total
            out[iters] = _retained_bytes(eval_loop, model)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        total = 0.0
        for xb, yb in _batches(X, y, 30, seed):  # a training loop: backward() frees the activations
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total = total + (loss if keep_graph else loss.item())
        nodes = _count_graph_nodes(total) if isinstance(total, torch.Tensor) else 0
        res[label] = {"retained_bytes_40": out[40], "retained_bytes_10": out[10], "train_loop_graph_nodes": nodes}
    b, f = res["buggy"], res["fixed"]
    growth = b["retained_bytes_40"] / max(b["retained_bytes_10"], 1)
    ok = f["retained_bytes_40"] == 0 and f["train_loop_graph_nodes"] == 0 and 3.0 <= growth <= 5.0 \
        and b["train_loop_graph_nodes"] >= 10
    return Result(
        b, f, verdict(ok),
        f"2x256 MLP, evaluation batches of 30 without no_grad: {b['retained_bytes_10'] / 1e6:.2f} MB of activations "
        f"held after 10 batches, {b['retained_bytes_40'] / 1e6:.2f} MB after 40 ({growth:.2f}x; margin: linear, "
        f"3-5x) vs {f['retained_bytes_40']} bytes with .item() (must be 0); training loop of 10 steps: "
        f"{b['train_loop_graph_nodes']} autograd nodes chained to the total vs {f['train_loop_graph_nodes']}",
    )


@experiment(
    "RC106",
    "clip_grad_norm_ called before backward() or after step() clips gradients that the update "
    "never uses: the run is bit-for-bit the unclipped run, and single updates exceed the clip bound.",
    "max_update_over_bound",
    buggy_label="clip after step()",
    fixed_label="clip between backward() and step()",
    metric="largest update norm / (lr x max_norm) over 30 SGD steps",
)
def clip_outside_backward_step(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    lr, max_norm = 0.5, 0.1
    runs = {}
    for place in ("none", "before_backward", "after_step", "correct"):
        model = mlp(2, 3, (64,), seed=seed).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        updates = []
        for epoch in range(3):
            for xb, yb in _batches(X, y, 30, seed + epoch):
                before = parameter_vector(model)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                if place == "before_backward":
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                loss.backward()
                if place == "correct":
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                opt.step()
                if place == "after_step":
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                updates.append(float((parameter_vector(model) - before).norm()))
        runs[place] = (parameter_vector(model), max(updates) / (lr * max_norm))
    ref = runs["none"][0]
    res = {}
    for label, place in (("buggy", "after_step"), ("fixed", "correct")):
        res[label] = {"max_update_over_bound": runs[place][1],
                      "distance_from_unclipped_run": float((runs[place][0] - ref).norm())}
    res["buggy"]["distance_before_backward"] = float((runs["before_backward"][0] - ref).norm())
    res["buggy"]["max_update_over_bound_before_backward"] = runs["before_backward"][1]
    b, f = res["buggy"], res["fixed"]
    ok = b["distance_from_unclipped_run"] == 0.0 and b["distance_before_backward"] == 0.0 \
        and b["max_update_over_bound"] > 1.5 and f["max_update_over_bound"] <= 1.0 + 1e-4 \
        and f["distance_from_unclipped_run"] > 0.0
    return Result(
        b, f, verdict(ok),
        f"SGD lr={lr}, clip_grad_norm_(max_norm={max_norm}), 30 steps: clipping after step() or before backward() "
        f"leaves the parameters {b['distance_from_unclipped_run']:.3g} / {b['distance_before_backward']:.3g} away "
        f"from the unclipped run (must be exactly 0), largest update {b['max_update_over_bound']:.3g}x the clip bound "
        f"(margin > 1.5) vs {f['max_update_over_bound']:.3g}x when clipping between backward() and step() (<= 1)",
    )


@experiment(
    "RC107",
    "Stepping the optimizer twice for one backward (scaler.step(opt) followed by opt.step(), or "
    "two step() calls) applies every gradient twice: each update is about twice the intended one "
    "(the LR is silently doubled) and the optimizer's state advances two steps per batch.",
    "update_over_intended",
    buggy_label="two step() per backward",
    fixed_label="one step()",
    metric="mean update norm per batch relative to one step() per batch (Adam, 20 batches)",
)
def double_optimizer_step(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    res = {}
    runs = {}
    for label, steps in (("buggy", 2), ("fixed", 1)):
        model = mlp(2, 3, (64,), seed=seed).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        norms, losses = [], []
        for epoch in range(2):
            for xb, yb in _batches(X, y, 30, seed + epoch):
                before = parameter_vector(model)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                for _ in range(steps):
                    opt.step()
                norms.append(float((parameter_vector(model) - before).norm()))
                losses.append(float(loss.detach()))
        runs[label] = (norms, losses, opt.state[next(iter(model.parameters()))]["step"])
    fixed_norms = runs["fixed"][0]
    for label in ("buggy", "fixed"):
        norms, losses, step = runs[label]
        res[label] = {
            "update_over_intended": sum(n / m for n, m in zip(norms, fixed_norms)) / len(norms),
            "first_update_over_intended": norms[0] / fixed_norms[0],
            "optimizer_steps_per_batch": float(step) / len(norms),
            "final_loss": losses[-1],
        }
    b, f = res["buggy"], res["fixed"]
    ok = abs(b["first_update_over_intended"] - 2.0) <= 0.05 and 1.5 <= b["update_over_intended"] <= 2.5 \
        and b["optimizer_steps_per_batch"] == 2.0 and f["optimizer_steps_per_batch"] == 1.0
    return Result(
        b, f, verdict(ok),
        f"Adam lr=1e-3, 20 batches: the first update is {b['first_update_over_intended']:.3f}x the single-step update "
        f"(margin: within 0.05 of 2), on average {b['update_over_intended']:.2f}x (margin 1.5-2.5); Adam's step "
        f"counter advances {b['optimizer_steps_per_batch']:.0f} per batch vs {f['optimizer_steps_per_batch']:.0f}",
    )


def _accumulated_update(model, micro, lr: float, mode: str, max_norm: Optional[float] = None) -> torch.Tensor:
    """One optimizer step over the micro-batches ``micro`` (loss / k each); returns the update vector.

    ``mode``: ``"correct"`` (zero_grad once, clip once before step), ``"zero_each"`` (zero_grad on every
    micro-batch: RC108), ``"clip_each"`` (clip_grad_norm_ after every micro-batch backward: RC109).
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    k = len(micro)
    before = parameter_vector(model)
    opt.zero_grad(set_to_none=True)
    for xb, yb in micro:
        if mode == "zero_each":
            opt.zero_grad(set_to_none=True)
        (F.cross_entropy(model(xb), yb) / k).backward()
        if mode == "clip_each":
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if mode == "correct" and max_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    opt.step()
    return parameter_vector(model) - before


def _large_batch_update(seed, xb, yb, lr, max_norm=None) -> torch.Tensor:
    ref = mlp(2, 3, (64,), seed=seed).to(xb.device)
    return _accumulated_update(ref, [(xb, yb)], lr, "correct", max_norm)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@experiment(
    "RC108",
    "zero_grad() on every micro-batch of a gradient accumulation erases all but the last "
    "micro-batch: the step applies the last micro-batch's gradient divided by k, not the "
    "accumulated large-batch gradient.",
    "last_micro_batch_share",
    buggy_label="zero_grad every micro-batch",
    fixed_label="zero_grad once per step",
    metric="share of the update explained by the last micro-batch alone (k=4)",
)
def zero_grad_inside_accumulation(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    k, bs, lr = 4, 30, 0.1
    batches = _batches(X, y, bs, seed)[:k]
    big = _large_batch_update(seed, torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]), lr)
    last_only = _accumulated_update(mlp(2, 3, (64,), seed=seed).to(device), [batches[-1]], lr, "correct") / k
    res = {}
    for label, mode in (("buggy", "zero_each"), ("fixed", "correct")):
        upd = _accumulated_update(mlp(2, 3, (64,), seed=seed).to(device), batches, lr, mode)
        cos = float(F.cosine_similarity(upd, big, dim=0))
        res[label] = {
            "last_micro_batch_share": 1.0 - _rel(upd, last_only) if _rel(upd, last_only) < 1 else 0.0,
            "error_vs_large_batch": _rel(upd, big),
            "cosine_to_large_batch": cos,
            "norm_over_large_batch": float(upd.norm() / big.norm()),
        }
    b, f = res["buggy"], res["fixed"]
    ok = b["last_micro_batch_share"] >= 0.9999 and b["error_vs_large_batch"] >= 0.3 and f["error_vs_large_batch"] <= 1e-4
    return Result(
        b, f, verdict(ok),
        f"k={k} micro-batches of {bs}, one SGD step: with zero_grad on every micro-batch the update equals the last "
        f"micro-batch's update / k (share {b['last_micro_batch_share']:.6f}; margin >= 0.9999), {b['error_vs_large_batch']:.2f} "
        f"relative error to the {k * bs}-example update (margin >= 0.3; norm {b['norm_over_large_batch']:.2f}x, "
        f"cosine {b['cosine_to_large_batch']:.2f}) vs {f['error_vs_large_batch']:.1e} with one zero_grad per step",
    )


@experiment(
    "RC109",
    "clip_grad_norm_ on every micro-batch of a gradient accumulation clips the running sum k times: "
    "earlier micro-batches are shrunk again and again, so the step is not the clipped large-batch "
    "gradient it is meant to be.",
    "error_vs_intended",
    buggy_label="clip every micro-batch",
    fixed_label="clip once before step()",
    metric="relative error of the update to the clipped large-batch update (k=4, max_norm=0.1)",
)
def clip_per_micro_batch(seed: int, device: str) -> Result:
    X, y = _data(seed, device)
    k, bs, lr, max_norm = 4, 30, 0.1, 0.1
    batches = _batches(X, y, bs, seed)[:k]
    big = _large_batch_update(seed, torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]), lr, max_norm)
    # each micro-batch's own update direction, to see which ones the step follows (reported only)
    own = [_accumulated_update(mlp(2, 3, (64,), seed=seed).to(device), [mb], lr, "correct") for mb in batches]
    res = {}
    for label, mode in (("buggy", "clip_each"), ("fixed", "correct")):
        upd = _accumulated_update(mlp(2, 3, (64,), seed=seed).to(device), batches, lr, mode, max_norm)
        res[label] = {
            "error_vs_intended": _rel(upd, big),
            "cosine_to_intended": float(F.cosine_similarity(upd, big, dim=0)),
            "norm_over_intended": float(upd.norm() / big.norm()),
            "cosine_to_first_micro_batch": float(F.cosine_similarity(upd, own[0], dim=0)),
            "cosine_to_last_micro_batch": float(F.cosine_similarity(upd, own[-1], dim=0)),
        }
    b, f = res["buggy"], res["fixed"]
    ok = b["error_vs_intended"] >= 0.05 and f["error_vs_intended"] <= 1e-4
    return Result(
        b, f, verdict(ok),
        f"k={k} micro-batches of {bs}, clip_grad_norm_(max_norm={max_norm}) (active: the large-batch gradient is "
        f"larger), one SGD step: clipping every micro-batch gives an update {b['error_vs_intended']:.3f} away (relative) "
        f"from the clipped large-batch update (margin >= 0.05; cosine {b['cosine_to_intended']:.3f}, norm "
        f"{b['norm_over_intended']:.2f}x) vs {f['error_vs_intended']:.1e} when clipping once; cosine to the first / last "
        f"micro-batch's own update {b['cosine_to_first_micro_batch']:.2f} / {b['cosine_to_last_micro_batch']:.2f} vs "
        f"{f['cosine_to_first_micro_batch']:.2f} / {f['cosine_to_last_micro_batch']:.2f} (reported)",
    )
