"""Small data sets made in code for the reference trainer and the validation experiments.

Every generator takes an explicit ``seed`` (or ``generator``) and draws only from its own
``torch.Generator`` on the CPU; the global RNG is never touched, so building a data set does
not perturb a training run's randomness. Tensors are created on the CPU and moved to
``device`` at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Union

import torch

Device = Union[str, torch.device, None]

__all__ = [
    "DataUnavailable",
    "Split",
    "make_generator",
    "spiral",
    "blobs",
    "class_sorted",
    "class_sorted_blobs",
    "adding_problem",
    "noise_features",
    "digits",
    "train_val_split",
]


class DataUnavailable(ImportError):
    """A data set needs an optional dependency that is not installed."""


@dataclass
class Split:
    """A train/validation split of one data set."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor

    def to(self, device: Device) -> "Split":
        return Split(*(t.to(device) for t in (self.X_train, self.y_train, self.X_val, self.y_val)))


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (the only source of randomness in this module)."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def _gen(seed: int, generator: Optional[torch.Generator]) -> torch.Generator:
    return generator if generator is not None else make_generator(seed)


def spiral(
    n_per_class: int = 100,
    classes: int = 3,
    noise: float = 0.2,
    *,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    device: Device = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classic 2-D spiral (CS231n): ``classes`` interleaved arms, not linearly separable.

    Arm ``j`` has radius ``r = linspace(0, 1, N)`` and angle ``t = linspace(4j, 4(j+1), N) +
    noise * N(0, 1)``; a point is ``(r sin t, r cos t)``. Returns ``X`` (float32, ``(K*N, 2)``)
    and ``y`` (int64, ``(K*N,)``) ordered by class.
    """
    g = _gen(seed, generator)
    xs, ys = [], []
    r = torch.linspace(0.0, 1.0, n_per_class)
    for j in range(classes):
        t = torch.linspace(j * 4.0, (j + 1) * 4.0, n_per_class)
        t = t + torch.randn(n_per_class, generator=g) * noise
        xs.append(torch.stack([r * torch.sin(t), r * torch.cos(t)], dim=1))
        ys.append(torch.full((n_per_class,), j, dtype=torch.long))
    return torch.cat(xs).to(device), torch.cat(ys).to(device)


def blobs(
    n_per_class: int = 100,
    classes: int = 4,
    dim: int = 2,
    spread: float = 1.0,
    center_scale: float = 4.0,
    *,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    device: Device = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Isotropic Gaussian blobs: centers ``~ N(0, center_scale^2)``, points ``~ N(center, spread^2)``.

    Returned in class order (all of class 0, then class 1, ...), shuffled by nobody.
    """
    g = _gen(seed, generator)
    centers = torch.randn(classes, dim, generator=g) * center_scale
    xs, ys = [], []
    for j in range(classes):
        xs.append(centers[j] + spread * torch.randn(n_per_class, dim, generator=g))
        ys.append(torch.full((n_per_class,), j, dtype=torch.long))
    return torch.cat(xs).to(device), torch.cat(ys).to(device)


def class_sorted(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same examples ordered by label (stable), as an unshuffled loader over sorted files yields them."""
    order = torch.sort(y.cpu(), stable=True).indices.to(y.device)
    return X[order], y[order]


def class_sorted_blobs(
    n_per_class: int = 100, classes: int = 4, dim: int = 2, *, seed: int = 0, device: Device = None, **kw
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian blobs in an order interleaved by nothing: every example of class 0, then class 1, ..."""
    X, y = blobs(n_per_class, classes, dim, seed=seed, device=device, **kw)
    return class_sorted(X, y)


def adding_problem(
    n: int = 256,
    length: int = 30,
    *,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    device: Device = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Hochreiter & Schmidhuber, 1997), a small sequence regression task.

    Each sequence has two channels: values ``~ U(0, 1)`` and a 0/1 marker that is 1 at exactly
    two positions (one in each half). The target is the sum of the two marked values (mean 1).
    Returns ``X`` of shape ``(n, length, 2)`` and ``y`` of shape ``(n, 1)``.
    """
    if length < 2:
        raise ValueError("length must be at least 2")
    g = _gen(seed, generator)
    values = torch.rand(n, length, generator=g)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=g)
    second = torch.randint(half, length, (n,), generator=g)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = torch.stack([values, markers], dim=2)
    y = (values * markers).sum(dim=1, keepdim=True)
    return X.to(device), y.to(device)


def noise_features(
    n: int = 60,
    features: int = 2000,
    classes: int = 2,
    *,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    device: Device = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure noise: ``n`` examples of ``features`` N(0, 1) features and labels independent of them.

    Any honest estimate of accuracy on this data is chance (``1/classes``); used to expose
    leakage from preprocessing fitted before the split.
    """
    g = _gen(seed, generator)
    X = torch.randn(n, features, generator=g)
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    return X.to(device), y.to(device)


def train_val_split(
    X: torch.Tensor,
    y: torch.Tensor,
    val_fraction: float = 0.25,
    *,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
) -> Split:
    """A random (seeded) split of ``(X, y)`` into train and validation parts."""
    g = _gen(seed, generator)
    n = X.shape[0]
    n_val = max(1, int(round(n * val_fraction)))
    perm = torch.randperm(n, generator=g).to(X.device)
    val, train = perm[:n_val], perm[n_val:]
    return Split(X[train], y[train], X[val], y[val])


def digits(
    val_fraction: float = 0.25,
    *,
    image: bool = False,
    seed: int = 0,
    device: Device = None,
) -> Split:
    """scikit-learn's bundled digits (1797 8x8 grey images, 10 classes), scaled to [0, 1].

    ``image=True`` returns ``(N, 1, 8, 8)`` tensors for a CNN, otherwise ``(N, 64)``. Needs
    scikit-learn (the ``data`` extra); raises :class:`DataUnavailable` when it is absent.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DataUnavailable(
            "the digits data set needs scikit-learn: pip install 'recipecheck[data]'"
        ) from exc
    data = load_digits()
    X = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    if image:
        X = X.reshape(-1, 1, 8, 8)
    return train_val_split(X, y, val_fraction, seed=seed).to(device)


def chance_loss(classes: int) -> float:
    """Softmax cross-entropy of a uniform prediction over ``classes`` classes: ``ln(C)``."""
    return math.log(classes)
