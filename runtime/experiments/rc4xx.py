"""RC4xx experiments: the data pipeline (shuffling, preprocessing leakage)."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ..reference.data import DataUnavailable, blobs, class_sorted, digits, make_generator, noise_features, spiral
from ..reference.trainer import TrainConfig, mlp, train
from .base import Result, Skipped, experiment, verdict


@experiment(
    "RC401",
    "Training on class-sorted data without shuffling makes every batch one class: the model "
    "chases the last classes it saw and ends each epoch far less accurate than with shuffle=True.",
    "final_acc",
    buggy_label="shuffle=False, sorted",
    fixed_label="shuffle=True",
    rt_codes=("RT110",),
    metric="held-out accuracy after 10 epochs (5 class-sorted blobs)",
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
    metric="5-fold cross-validated accuracy on pure noise (truth 0.5)",
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


def _fresh_gap_runs(seed: int, device: str):
    """A small, noisy training set that a 2x128 MLP overfits, a 90-example validation split and a
    fresh 900-example held-out set standing for new data. Returns (model, splits, per-epoch curves)."""
    X, y = spiral(340, 3, noise=0.35, seed=seed, device=device)
    perm = torch.randperm(len(X), generator=make_generator(seed + 7)).to(device)
    tr, va, fresh = perm[:30 * 3], perm[90:180], perm[180:]
    model = mlp(2, 3, (128, 128), seed=seed)
    cfg = TrainConfig(epochs=60, batch_size=30, optimizer="adam", lr=0.01)
    hist = train(model, X[tr], y[tr], cfg, X_val=X[va], y_val=y[va], seed=seed, device=device)
    return model, (X[tr], y[tr], X[va], y[va], X[fresh], y[fresh]), hist


def _acc(model, X, y) -> float:
    with torch.no_grad():
        return float((model.eval()(X).argmax(1) == y).float().mean())


@experiment(
    "RC406",
    "A 'validation' metric computed on the training data measures memorization, not "
    "generalization: on a model that overfits it overstates the accuracy on new data by a wide "
    "margin, while a held-out split estimates it.",
    "optimism",
    buggy_label="evaluated on the training set",
    fixed_label="evaluated on a held-out split",
    metric="reported accuracy minus accuracy on 900 fresh examples",
)
def eval_on_training_data(seed: int, device: str) -> Result:
    model, (Xtr, ytr, Xva, yva, Xf, yf), _ = _fresh_gap_runs(seed, device)
    fresh = _acc(model, Xf, yf)
    b = {"optimism": _acc(model, Xtr, ytr) - fresh, "reported_acc": _acc(model, Xtr, ytr), "fresh_acc": fresh}
    f = {"optimism": _acc(model, Xva, yva) - fresh, "reported_acc": _acc(model, Xva, yva), "fresh_acc": fresh}
    ok = b["optimism"] >= 0.1 and abs(f["optimism"]) < b["optimism"] / 2
    return Result(
        b, f, verdict(ok),
        f"spiral (noise 0.35), 90 training examples, 2x128 MLP, 60 Adam epochs: reported accuracy {b['reported_acc']:.3f} "
        f"on the training set vs {f['reported_acc']:.3f} on a 90-example held-out split; on 900 fresh examples "
        f"{fresh:.3f}: optimism {b['optimism']:+.3f} (margin >= 0.1) vs {f['optimism']:+.3f} (margin: under half of it)",
    )


@experiment(
    "RC403",
    "Normalization statistics fitted on the test set (instead of the training set) make the "
    "evaluation see data transformed differently from how new data will be: the reported metric "
    "no longer estimates the accuracy on new examples normalized with the training statistics.",
    "abs_error",
    buggy_label="scaler fitted on the test set",
    fixed_label="scaler fitted on the training set",
    metric="|test accuracy reported - accuracy on 2000 fresh examples| (30-example test set)",
)
def preprocessing_fit_on_eval_data(seed: int, device: str) -> Result:
    g = make_generator(seed)
    scale = torch.tensor([1.0, 10.0, 100.0, 1000.0])
    offset = torch.tensor([0.0, 50.0, -300.0, 2000.0])
    X, y = blobs(700, 3, dim=4, spread=1.5, center_scale=1.5, seed=seed)
    X = X * scale + offset * 1.0
    perm = torch.randperm(len(X), generator=g)
    tr, te, fresh = perm[:60], perm[60:90], perm[90:]
    mu, sd = X[tr].mean(0), X[tr].std(0)
    model = mlp(4, 3, (32,), seed=seed)
    train(model, ((X[tr] - mu) / sd).to(device), y[tr].to(device),
          TrainConfig(epochs=30, batch_size=20, optimizer="sgd", lr=0.1, momentum=0.9), seed=seed, device=device,
          evaluate_every_epoch=False)
    model = model.cpu()
    truth = _acc(model, (X[fresh] - mu) / sd, y[fresh])
    mu_t, sd_t = X[te].mean(0), X[te].std(0)
    reported_bug = _acc(model, (X[te] - mu_t) / sd_t, y[te])
    reported_fix = _acc(model, (X[te] - mu) / sd, y[te])
    b = {"abs_error": abs(reported_bug - truth), "reported_acc": reported_bug, "fresh_acc": truth}
    f = {"abs_error": abs(reported_fix - truth), "reported_acc": reported_fix, "fresh_acc": truth}
    ok = b["abs_error"] >= f["abs_error"] + 0.02
    return Result(
        b, f, verdict(ok),
        f"4 Gaussian features in different units, 60 training / 30 test / 2000 fresh examples: test accuracy "
        f"{b['reported_acc']:.3f} with test-fitted statistics vs {f['reported_acc']:.3f} with training statistics; "
        f"fresh accuracy {truth:.3f}: error {b['abs_error']:.3f} vs {f['abs_error']:.3f} (margin: >= 0.02 larger)",
    )


@experiment(
    "RC404",
    "Inputs in raw units (features spanning 1 to 1000, with offsets) make the loss surface badly "
    "conditioned: even at its best learning rate SGD converges far more slowly than on "
    "standardized inputs.",
    "best_final_loss",
    buggy_label="raw inputs",
    fixed_label="standardized inputs",
    metric="lowest training loss after 100 SGD steps over the LR sweep 1e-5..1",
)
def no_input_normalization(seed: int, device: str) -> Result:
    scale = torch.tensor([1.0, 10.0, 100.0, 1000.0])
    offset = torch.tensor([0.0, 50.0, -300.0, 2000.0])
    X, y = blobs(100, 3, dim=4, spread=1.0, center_scale=2.0, seed=seed)
    X = X * scale + offset
    Xn = (X - X.mean(0)) / X.std(0)
    res = {}
    for label, data in (("buggy", X), ("fixed", Xn)):
        losses = {}
        for lr in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0):
            model = mlp(4, 3, (32,), seed=seed)
            h = train(model, data.to(device), y.to(device),
                      TrainConfig(epochs=10, batch_size=30, optimizer="sgd", lr=lr, momentum=0.9),
                      seed=seed, device=device, evaluate_every_epoch=False)
            v = h.train_loss[-1]
            losses[lr] = v if math.isfinite(v) else 1e6
        best = min(losses, key=losses.get)
        res[label] = {"best_final_loss": losses[best], "best_lr": best}
    b, f = res["buggy"], res["fixed"]
    ok = b["best_final_loss"] >= 1.5 * f["best_final_loss"]
    return Result(
        b, f, verdict(ok),
        f"3 Gaussian blobs in 4 features scaled 1-1000 with offsets, 100 SGD steps (momentum 0.9), best over lr "
        f"1e-5..1: loss {b['best_final_loss']:.3f} (lr {b['best_lr']:g}) raw vs {f['best_final_loss']:.3f} "
        f"(lr {f['best_lr']:g}) standardized (margin: >= 1.5x)",
    )


def _random_shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """RandomCrop(8, padding=1) on 8x8 images: a random shift of up to one pixel each way."""
    imgs = F.pad(x.reshape(-1, 1, 8, 8), (1, 1, 1, 1))
    i, j = (int(v) for v in torch.randint(0, 3, (2,), generator=gen))
    return imgs[:, :, i:i + 8, j:j + 8].reshape(len(x), 64)


@experiment(
    "RC405",
    "Random augmentation in the evaluation transform makes the metric random and biased: "
    "repeated evaluations of the same model on the same images disagree, and the augmented "
    "inputs score lower than the real ones.",
    "eval_acc_range",
    buggy_label="RandomCrop in the eval transform",
    fixed_label="deterministic eval transform",
    metric="range of the test accuracy over 10 evaluations of the same model",
)
def augmentation_in_eval_transform(seed: int, device: str) -> Result:
    try:
        split = digits(seed=seed)
    except DataUnavailable as exc:
        raise Skipped(str(exc)) from exc
    gen = make_generator(seed + 3)
    model = mlp(64, 10, (64,), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(5):  # trained with the augmentation, as the recipe intends
        order = torch.randperm(len(split.X_train), generator=gen)
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(_random_shift(split.X_train[idx], gen)), split.y_train[idx]).backward()
            opt.step()
    res = {}
    for label, augment in (("buggy", True), ("fixed", False)):
        eval_gen = make_generator(seed + 11)
        accs = []
        for _ in range(10):
            batches = [split.X_val[i:i + 50] for i in range(0, len(split.X_val), 50)]
            xs = torch.cat([_random_shift(b, eval_gen) if augment else b for b in batches])
            accs.append(_acc(model, xs, split.y_val))
        res[label] = {"eval_acc_range": max(accs) - min(accs), "eval_acc_mean": sum(accs) / len(accs)}
    b, f = res["buggy"], res["fixed"]
    ok = b["eval_acc_range"] >= 0.005 and f["eval_acc_range"] == 0.0 and b["eval_acc_mean"] < f["eval_acc_mean"]
    return Result(
        b, f, verdict(ok),
        f"digits, MLP trained 5 epochs with RandomCrop(8, padding=1), 10 evaluations of 450 test images: accuracy "
        f"range {b['eval_acc_range']:.3f} (margin >= 0.005) and mean {b['eval_acc_mean']:.3f} with the crop in the eval "
        f"transform vs {f['eval_acc_range']:.3f} (must be 0) and {f['eval_acc_mean']:.3f} without (margin: lower mean)",
    )
