"""RC4xx experiments: the data pipeline (shuffling, preprocessing leakage)."""

from __future__ import annotations

import torch

from ..reference.data import blobs, class_sorted, make_generator, noise_features
from ..reference.trainer import TrainConfig, mlp, train
from .base import Result, experiment, verdict


@experiment(
    "RC401",
    "Training on class-sorted data without shuffling makes every batch one class: the model "
    "chases the last classes it saw and ends each epoch far less accurate than with shuffle=True.",
    "final_acc",
    buggy_label="shuffle=False, sorted",
    fixed_label="shuffle=True",
    rt_codes=("RT110",),
)
def unshuffled_sorted(seed: int, device: str) -> Result:
    classes = 5
    Xa, ya = blobs(200, classes, dim=2, spread=1.0, center_scale=4.0, seed=seed, device=device)
    X, y = class_sorted(Xa[0::2], ya[0::2])  # training half, every class in a block
    Xt, yt = Xa[1::2], ya[1::2]  # held-out half from the same blobs
    res, series, rt = {}, {"val_acc": {}}, {}
    for label, shuffle in (("buggy", False), ("fixed", True)):
        model = mlp(2, classes, (32,), seed=seed)
        cfg = TrainConfig(epochs=10, batch_size=20, optimizer="sgd", lr=0.1, momentum=0.9, shuffle=shuffle)
        h = train(model, X, y, cfg, X_val=Xt, y_val=yt, seed=seed, device=device, monitor=True)
        rt[label] = h.rt_codes
        with torch.no_grad():
            pred = model.eval()(Xt).argmax(1)
        res[label] = {
            "final_acc": h.val_acc[-1],
            "mean_epoch_acc": sum(h.val_acc) / len(h.val_acc),
            "predicted_last_class": float((pred == classes - 1).float().mean()),
        }
        series["val_acc"][label] = h.val_acc
    b, f = res["buggy"], res["fixed"]
    ok = f["final_acc"] >= b["final_acc"] + 0.2 and f["mean_epoch_acc"] >= b["mean_epoch_acc"] + 0.2
    return Result(
        b, f, verdict(ok),
        f"{classes} Gaussian blobs sorted by class, 10 epochs: accuracy {b['final_acc']:.3f} unshuffled vs "
        f"{f['final_acc']:.3f} shuffled (margin >= 0.2); {b['predicted_last_class']:.0%} of predictions "
        f"are the last class seen (chance {1 / classes:.0%})",
        series, monitor=rt,
    )


def _select_features(X: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k features most correlated (in absolute value) with the binary label."""
    t = (y.float() * 2 - 1)
    Xc = X - X.mean(0)
    corr = (Xc * (t - t.mean()).unsqueeze(1)).sum(0) / (Xc.norm(dim=0) * (t - t.mean()).norm() + 1e-12)
    return corr.abs().topk(k).indices


def _fit_stats(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return X.mean(0), X.std(0) + 1e-8


def _nearest_centroid_acc(Xtr, ytr, Xte, yte) -> float:
    centroids = torch.stack([Xtr[ytr == c].mean(0) for c in (0, 1)])
    pred = torch.cdist(Xte, centroids).argmin(1)
    return float((pred == yte).float().mean())


@experiment(
    "RC402",
    "Statistics fitted on the whole data set before the split leak the validation labels into "
    "the preprocessing: on pure-noise data, feature selection + normalization fitted before a "
    "k-fold split report far-above-chance accuracy; fitted inside each training fold, chance.",
    "cv_accuracy",
    buggy_label="fit before split",
    fixed_label="fit on train fold",
)
def preprocessing_before_split(seed: int, device: str) -> Result:
    n, d, k, folds, repeats = 60, 2000, 20, 5, 10
    accs = {"buggy": [], "fixed": []}
    for r in range(repeats):
        X, y = noise_features(n, d, seed=seed * 1000 + r, device=device)
        perm = torch.randperm(n, generator=make_generator(seed * 1000 + r + 500)).to(device)
        for label in ("buggy", "fixed"):
            if label == "buggy":  # preprocessing fitted on all n examples, then cross-validated
                feats = _select_features(X, y, k)
                mu, sd = _fit_stats(X[:, feats])
            fold_accs = []
            for f in range(folds):
                te = perm[f::folds]
                mask = torch.ones(n, dtype=torch.bool, device=device)
                mask[te] = False
                tr = mask.nonzero().squeeze(1)
                if label == "fixed":  # fitted on the training fold only
                    feats = _select_features(X[tr], y[tr], k)
                    mu, sd = _fit_stats(X[tr][:, feats])
                Xtr, Xte = (X[tr][:, feats] - mu) / sd, (X[te][:, feats] - mu) / sd
                fold_accs.append(_nearest_centroid_acc(Xtr, y[tr], Xte, y[te]))
            accs[label].append(sum(fold_accs) / folds)
    res = {}
    for label, a in accs.items():
        mean = sum(a) / len(a)
        res[label] = {"cv_accuracy": mean, "min": min(a), "max": max(a), "chance": 0.5}
    b, f = res["buggy"], res["fixed"]
    ok = b["cv_accuracy"] >= f["cv_accuracy"] + 0.2 and abs(f["cv_accuracy"] - 0.5) <= 0.1
    return Result(
        b, f, verdict(ok),
        f"{n} examples x {d} noise features, labels independent, top-{k} correlation selection + z-scoring, "
        f"{folds}-fold CV over {repeats} draws: {b['cv_accuracy']:.3f} fitted before the split vs "
        f"{f['cv_accuracy']:.3f} inside each fold (truth 0.5; margin >= 0.2 gap, fixed within 0.1 of chance)",
        {"cv_accuracy": {"buggy": accs["buggy"], "fixed": accs["fixed"]}},
    )
