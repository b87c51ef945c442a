"""RC7xx experiments: the evaluation protocol."""

from __future__ import annotations

import torch

from ..reference.data import spiral, train_val_split
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
