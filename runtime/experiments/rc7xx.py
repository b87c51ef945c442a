"""RC7xx experiments: the evaluation protocol."""

from __future__ import annotations

import math
import time

import torch
from torch.nn import functional as F

from ..reference.data import blobs, make_generator, spiral, train_val_split
from ..monitor import monitor as runtime_monitor
from ..reference.trainer import TrainConfig, mlp, seeded_global_rng, train
from .base import Result, experiment, verdict


def _eval_batches(model, X, y, batch: int) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(X), batch):
            correct += int((model(X[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / len(X)


@experiment(
    "RC701",
    "Evaluating without model.eval() leaves Dropout sampling and BatchNorm using batch "
    "statistics (and updating its running ones): the validation metric is lower, changes "
    "from one evaluation to the next, and evaluation alters the model.",
    "val_acc_range",
    buggy_label="no model.eval()",
    fixed_label="model.eval()",
    rt_codes=("RT111",),
    metric="range of the validation accuracy over 10 evaluations",
)
def missing_eval_mode(seed: int, device: str) -> Result:
    X, y = spiral(150, 3, seed=seed, device=device)
    split = train_val_split(X, y, 0.3, seed=seed)
    model = mlp(2, 3, (128, 128), block=("linear", "bn", "act", "dropout"), dropout=0.3, seed=seed)
    cfg = TrainConfig(epochs=30, batch_size=32, optimizer="adam", lr=0.01)
    train(model, split.X_train, split.y_train, cfg, seed=seed, device=device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    res, rt = {}, {}
    for label, use_eval in (("buggy", False), ("fixed", True)):
        model.load_state_dict(state)
        model.train(not use_eval)
        accs = []
        # the evaluation loop is where the bug lives, so that is what the runtime monitor watches
        with seeded_global_rng(seed + 1, device), runtime_monitor(model, report=None, summary=False) as mon:
            for _ in range(10):
                accs.append(_eval_batches(model, split.X_val, split.y_val, 16))
        rt[label] = sorted({f.code for f in mon.findings})
        mean = sum(accs) / len(accs)
        drift = max(float((model.state_dict()[k].float() - v.float()).abs().max())
                    for k, v in state.items() if not k.endswith("num_batches_tracked"))
        res[label] = {
            "val_acc_mean": mean,
            "val_acc_range": max(accs) - min(accs),
            "val_acc_min": min(accs),
            "val_acc_max": max(accs),
            "state_change_by_eval": drift,
        }
    b, f = res["buggy"], res["fixed"]
    ok = b["val_acc_range"] > 0.005 and f["val_acc_range"] == 0.0 and f["state_change_by_eval"] == 0.0 \
        and b["state_change_by_eval"] > 0.0 and f["val_acc_mean"] >= b["val_acc_mean"] + 0.01
    return Result(
        b, f, verdict(ok),
        f"BN+Dropout(0.3) MLP on spiral, 10 evaluations in batches of 16: validation accuracy "
        f"{b['val_acc_min']:.3f}-{b['val_acc_max']:.3f} in train mode vs {f['val_acc_mean']:.3f} every time with eval() "
        f"(margins: range > 0.005 vs exactly 0, mean >= 0.01 lower); BN running stats moved by "
        f"{b['state_change_by_eval']:.3g} during train-mode evaluation vs {f['state_change_by_eval']:.3g}",
        monitor=rt,
    )


@experiment(
    "RC702",
    "model.eval() inside the epoch loop without a later model.train() leaves every later training "
    "step in eval mode: Dropout is off and BatchNorm stops updating its running statistics for the "
    "rest of the run, silently changing the recipe.",
    "eval_mode_step_share",
    buggy_label="model.train() never restored",
    fixed_label="model.train() each epoch",
    metric="share of training steps run in eval mode (10 epochs, validation after each)",
)
def missing_train_mode(seed: int, device: str) -> Result:
    X, y = spiral(100, 3, seed=seed, device=device)
    split = train_val_split(X, y, 0.3, seed=seed)
    res = {}
    for label, restore in (("buggy", False), ("fixed", True)):
        model = mlp(2, 3, (64, 64), block=("linear", "bn", "act", "dropout"), dropout=0.3, seed=seed).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        gen = make_generator(seed + 1)
        bn = model[1]
        in_eval, steps, stats_moves = 0, 0, 0
        model.train()
        with seeded_global_rng(seed, device):
            for epoch in range(10):
                if restore:
                    model.train()
                order = torch.randperm(len(split.X_train), generator=gen).to(device)
                for i in range(0, len(order), 21):
                    idx = order[i:i + 21]
                    before = bn.running_mean.clone()
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(model(split.X_train[idx]), split.y_train[idx]).backward()
                    opt.step()
                    steps += 1
                    in_eval += not model.training
                    stats_moves += bool((bn.running_mean != before).any())
                model.eval()
                val = _eval_batches(model, split.X_val, split.y_val, 90)
        res[label] = {"eval_mode_step_share": in_eval / steps, "bn_stat_updates": stats_moves, "steps": steps,
                      "final_val_acc": val}
    b, f = res["buggy"], res["fixed"]
    ok = b["eval_mode_step_share"] >= 0.85 and f["eval_mode_step_share"] == 0.0 and b["bn_stat_updates"] < f["bn_stat_updates"]
    return Result(
        b, f, verdict(ok),
        f"BN+Dropout MLP, 10 epochs of {b['steps'] // 10} steps, validation after each epoch: "
        f"{b['eval_mode_step_share']:.0%} of the training steps ran in eval mode (margin >= 85%) vs "
        f"{f['eval_mode_step_share']:.0%}; BatchNorm running statistics updated on {b['bn_stat_updates']} steps vs "
        f"{f['bn_stat_updates']}; final validation accuracy {b['final_val_acc']:.3f} vs {f['final_val_acc']:.3f} (reported)",
    )


@experiment(
    "RC703",
    "An evaluation loop without torch.no_grad() builds the autograd graph of every batch: the "
    "activations it saves for a backward pass that never comes take memory (and time) that "
    "no_grad evaluation does not spend.",
    "graph_bytes_per_batch",
    buggy_label="no torch.no_grad()",
    fixed_label="torch.no_grad()",
    metric="bytes saved for backward during one evaluation batch of 100 (2x256 MLP)",
)
def eval_without_no_grad(seed: int, device: str) -> Result:
    from .rc1xx import _Saved

    X, y = spiral(100, 3, seed=seed, device=device)
    model = mlp(2, 3, (256, 256), seed=seed).to(device).eval()
    params = {p.data_ptr() for p in model.parameters()}
    res = {}
    for label, grad_off in (("buggy", False), ("fixed", True)):
        peak = 0
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(lambda t: _Saved(t, params), lambda s: s.t):
            for i in range(0, len(X), 100):
                start = _Saved.live
                if grad_off:
                    with torch.no_grad():
                        out = model(X[i:i + 100])
                else:
                    out = model(X[i:i + 100])
                peak = max(peak, _Saved.live - start)
                del out
        res[label] = {"graph_bytes_per_batch": peak, "seconds": time.perf_counter() - t0}
    b, f = res["buggy"], res["fixed"]
    ok = b["graph_bytes_per_batch"] >= 100 * 256 * 4 and f["graph_bytes_per_batch"] == 0
    return Result(
        b, f, verdict(ok),
        f"3 batches of 100 through a 2x256 MLP in eval mode: {b['graph_bytes_per_batch'] / 1e3:.0f} kB held for backward per "
        f"batch without no_grad (margin: at least one 100x256 activation) vs {f['graph_bytes_per_batch']} with it (must "
        f"be 0); time {b['seconds'] * 1e3:.1f} vs {f['seconds'] * 1e3:.1f} ms (reported only: timings on a shared machine)",
    )


@experiment(
    "RC704",
    "Choosing the checkpoint by its test accuracy and reporting that test accuracy is optimistic: "
    "the maximum over many noisy estimates is biased upward, so the reported number exceeds the "
    "selected model's accuracy on new data; selecting on a validation split removes the bias.",
    "optimism",
    buggy_label="select and report on test",
    fixed_label="select on validation, report test",
    metric="reported test accuracy minus the selected checkpoint's accuracy on 1500 fresh examples",
)
def model_selection_on_test_set(seed: int, device: str) -> Result:
    X, y = spiral(600, 3, noise=0.5, seed=seed, device=device)
    perm = torch.randperm(len(X), generator=make_generator(seed + 7)).to(device)
    tr, va, te, fresh = perm[:150], perm[150:210], perm[210:270], perm[270:]
    model = mlp(2, 3, (64,), seed=seed).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    gen = make_generator(seed + 1)
    ckpts = []
    for epoch in range(30):
        model.train()
        order = tr[torch.randperm(len(tr), generator=gen).to(device)]
        for i in range(0, len(order), 15):
            idx = order[i:i + 15]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        ckpts.append(tuple(_eval_batches(model, X[s], y[s], 2000) for s in (va, te, fresh)))
    res = {}
    for label, key in (("buggy", 1), ("fixed", 0)):
        best = max(range(len(ckpts)), key=lambda i: (ckpts[i][key], -i))
        res[label] = {"optimism": ckpts[best][1] - ckpts[best][2], "reported_test_acc": ckpts[best][1],
                      "fresh_acc": ckpts[best][2], "epoch": best + 1}
    b, f = res["buggy"], res["fixed"]
    ok = b["optimism"] >= f["optimism"] + 0.02
    return Result(
        b, f, verdict(ok),
        f"spiral (noise 0.5), 150 training / 60 validation / 60 test / 1530 fresh examples, 30 checkpoints: selecting on "
        f"test reports {b['reported_test_acc']:.3f} (epoch {b['epoch']}, fresh {b['fresh_acc']:.3f}, optimism "
        f"{b['optimism']:+.3f}) vs selecting on validation {f['reported_test_acc']:.3f} (epoch {f['epoch']}, fresh "
        f"{f['fresh_acc']:.3f}, optimism {f['optimism']:+.3f}) (margin: >= 0.02 more optimistic)",
    )


def _hparam_trial(lr: float, wd: float, data, seed: int) -> float:
    Xtr, ytr, Xva, yva = data
    model = mlp(Xtr.shape[1], 4, (16,), seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    for _ in range(40):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(Xtr), ytr).backward()
        opt.step()
    with torch.no_grad():
        v = float(F.cross_entropy(model(Xva), yva))
    return v if math.isfinite(v) else 1e6


@experiment(
    "RC706",
    "At the same budget of 9 trials, a 3x3 grid over (lr, weight decay) tries only 3 learning rates "
    "while random log-uniform search tries 9: when the LR matters most, random search finds a lower "
    "validation loss more often than not.",
    "best_val_loss",
    buggy_label="3x3 log grid",
    fixed_label="9 random log-uniform trials",
    metric="best validation loss of 9 trials (lr in [1e-3, 1], wd in [1e-6, 1e-2])",
)
def grid_vs_random_search(seed: int, device: str) -> Result:
    X, y = blobs(60, 4, dim=10, spread=2.0, center_scale=1.0, seed=seed)
    split = train_val_split(X, y, 0.5, seed=seed)
    data = (split.X_train, split.y_train, split.X_val, split.y_val)
    grid = [(10 ** a, 10 ** b) for a in (-3.0, -1.5, 0.0) for b in (-6.0, -4.0, -2.0)]
    g = make_generator(seed + 5)
    rand = [(10 ** float(-3 + 3 * torch.rand(1, generator=g)), 10 ** float(-6 + 4 * torch.rand(1, generator=g)))
            for _ in range(9)]
    res = {}
    for label, trials in (("buggy", grid), ("fixed", rand)):
        losses = [_hparam_trial(lr, wd, data, seed) for lr, wd in trials]
        i = min(range(len(losses)), key=losses.__getitem__)
        res[label] = {"best_val_loss": losses[i], "best_lr": trials[i][0],
                      "distinct_lrs": len({round(t[0], 12) for t in trials})}
    b, f = res["buggy"], res["fixed"]
    ok = f["best_val_loss"] <= b["best_val_loss"]
    return Result(
        b, f, verdict(ok),
        f"4 noisy blobs in 10-d, 16-unit MLP, 40 full-batch SGD steps per trial: best validation loss "
        f"{b['best_val_loss']:.3f} (lr {b['best_lr']:.2g}, {b['distinct_lrs']} distinct LRs) on the grid vs "
        f"{f['best_val_loss']:.3f} (lr {f['best_lr']:.2g}, {f['distinct_lrs']} distinct LRs) at random (margin: random "
        f"at least as low, per seed)",
    )
