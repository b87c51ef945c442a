"""Reference regularizers, each written from its definition.

Randomness always comes from an explicit ``torch.Generator`` (keyword ``generator``) so that an
experiment's buggy and fixed runs see the same masks and the global RNG that training uses is
left alone. Random tensors are drawn on ``generator.device`` and moved to the input's device,
so a CPU generator works for inputs anywhere; the code never names a device itself.

Contents: weight penalties (L2, L1, elastic net) and their gradients; the max-norm constraint;
inverted and test-time-scaling dropout; DropConnect; batch norm; label smoothing; mixup, cutmix
and cutout; stochastic depth; random flip/crop; gradient clipping by norm and by value; early
stopping with best-checkpoint restore; EMA and Polyak weight averaging; snapshot ensembles.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "l2_penalty",
    "l2_penalty_grad",
    "l1_penalty",
    "l1_penalty_grad",
    "elastic_net_penalty",
    "elastic_net_penalty_grad",
    "max_norm_",
    "inverted_dropout",
    "scaled_dropout",
    "dropconnect_linear",
    "batch_norm",
    "smooth_labels",
    "label_smoothing_cross_entropy",
    "sample_gamma",
    "sample_beta",
    "Mixed",
    "mixup",
    "cutmix",
    "cutout",
    "stochastic_depth",
    "random_horizontal_flip",
    "random_crop",
    "clip_grad_norm_",
    "clip_grad_value_",
    "EarlyStopping",
    "EMA",
    "PolyakAverage",
    "SnapshotEnsemble",
]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _rand(shape: Any, generator: torch.Generator, like: Tensor, dtype: torch.dtype | None = None
          ) -> Tensor:
    """Uniform [0, 1) drawn from ``generator`` on its own device, returned on ``like``'s device."""
    dtype = dtype or (like.dtype if like.is_floating_point() else torch.get_default_dtype())
    return torch.rand(shape, generator=generator, device=generator.device, dtype=dtype).to(like.device)


def _randint(high: int, shape: Any, generator: torch.Generator, like: Tensor) -> Tensor:
    return torch.randint(0, high, shape, generator=generator, device=generator.device).to(like.device)


def _randperm(n: int, generator: torch.Generator, like: Tensor) -> Tensor:
    return torch.randperm(n, generator=generator, device=generator.device).to(like.device)


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability p must be in [0, 1], got {p}")


def _params(params: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [params] if isinstance(params, Tensor) else list(params)


# ---------------------------------------------------------------------------------------------
# weight penalties
# ---------------------------------------------------------------------------------------------


def l2_penalty(params: Tensor | Iterable[Tensor], lam: float) -> Tensor:
    """``lam / 2 * sum_i ||w_i||^2``; the 1/2 makes the gradient ``lam * w``, i.e. SGD's
    ``weight_decay=lam``."""
    ps = _params(params)
    return 0.5 * lam * sum(p.pow(2).sum() for p in ps)  # type: ignore[return-value]


def l2_penalty_grad(param: Tensor, lam: float) -> Tensor:
    """Gradient of :func:`l2_penalty` with respect to one tensor: ``lam * w``."""
    return lam * param


def l1_penalty(params: Tensor | Iterable[Tensor], lam: float) -> Tensor:
    """``lam * sum_i |w_i|_1`` (pushes weights to exactly zero: sparse solutions)."""
    ps = _params(params)
    return lam * sum(p.abs().sum() for p in ps)  # type: ignore[return-value]


def l1_penalty_grad(param: Tensor, lam: float) -> Tensor:
    """(Sub)gradient of :func:`l1_penalty`: ``lam * sign(w)`` (0 at w = 0, as autograd uses)."""
    return lam * torch.sign(param)


def elastic_net_penalty(params: Tensor | Iterable[Tensor], l1: float, l2: float) -> Tensor:
    """Elastic net: ``l1 * sum |w| + l2 / 2 * sum w^2``."""
    return l1_penalty(params, l1) + l2_penalty(params, l2)


def elastic_net_penalty_grad(param: Tensor, l1: float, l2: float) -> Tensor:
    """Gradient of :func:`elastic_net_penalty`: ``l1 * sign(w) + l2 * w``."""
    return l1_penalty_grad(param, l1) + l2_penalty_grad(param, l2)


# ---------------------------------------------------------------------------------------------
# max-norm
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def max_norm_(weight: Tensor, max_norm: float, dim: int = 0, eps: float = 1e-7) -> Tensor:
    """Project every unit's weight vector back into the ball ``||w_u||_2 <= max_norm``, in place.

    Units are indexed by ``dim`` (0 = output units of a Linear ``[out, in]`` or Conv
    ``[out, in, kh, kw]`` weight); the norm runs over all other dimensions. Applied *after*
    each optimizer step (projected gradient descent), as in Srivastava et al.'s dropout paper::

        w_u = w_u * min(1, max_norm / ||w_u||)

    Same rule as ``torch.renorm(weight, 2, dim, max_norm)`` (``eps`` keeps the result strictly
    inside the ball).
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    other = [d for d in range(weight.dim()) if d != dim % max(weight.dim(), 1)]
    norms = weight.norm(p=2, dim=other, keepdim=True) if other else weight.abs()
    scale = torch.where(norms > max_norm, max_norm / (norms + eps), torch.ones_like(norms))
    weight.mul_(scale)
    return weight


# ---------------------------------------------------------------------------------------------
# dropout, DropConnect
# ---------------------------------------------------------------------------------------------


def inverted_dropout(
    x: Tensor, p: float, *, generator: torch.Generator, training: bool = True
) -> Tensor:
    """Inverted dropout (what ``nn.Dropout`` does)::

        train: y = x * m / (1 - p),  m ~ Bernoulli(1 - p) per element   =>  E[y] = x
        eval:  y = x

    Scaling at training time keeps the expected activation unchanged, so evaluation needs no
    change at all.
    """
    _check_p(p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = _rand(x.shape, generator, x) >= p
    return x * keep / (1.0 - p)


def scaled_dropout(
    x: Tensor, p: float, *, generator: torch.Generator, training: bool = True
) -> Tensor:
    """Original dropout with test-time weight scaling (Srivastava et al., 2014)::

        train: y = x * m,  m ~ Bernoulli(1 - p)     =>  E[y] = (1 - p) x
        eval:  y = (1 - p) x

    Equivalent in expectation to :func:`inverted_dropout` up to the constant 1/(1-p) applied at
    the other phase; with the same generator state the train outputs differ exactly by that
    factor. Forgetting the eval-time scaling is the classic bug this variant invites.
    """
    _check_p(p)
    if not training:
        return x * (1.0 - p)
    if p == 0.0:
        return x
    keep = _rand(x.shape, generator, x) >= p
    return x * keep


def dropconnect_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    p: float = 0.5,
    *,
    generator: torch.Generator,
    training: bool = True,
) -> Tensor:
    """A linear layer with DropConnect (Wan et al., 2013): drop *weights*, not activations::

        train: y = x @ (W * M / (1 - p))^T + b,  M ~ Bernoulli(1 - p) per weight (one mask per
               call, shared by the batch)                         =>  E[y] = x @ W^T + b
        eval:  y = x @ W^T + b

    Uses the inverted scaling (like :func:`inverted_dropout`) instead of the paper's Gaussian
    moment matching at inference, so evaluation is the plain layer.
    """
    _check_p(p)
    if not training or p == 0.0:
        return F.linear(x, weight, bias)
    keep = _rand(weight.shape, generator, weight) >= p
    w = weight * keep / (1.0 - p) if p < 1.0 else torch.zeros_like(weight)
    return F.linear(x, w, bias)


# ---------------------------------------------------------------------------------------------
# batch norm
# ---------------------------------------------------------------------------------------------


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization (Ioffe & Szegedy) over every dim but the channel dim 1::

        train: mu, var = mean and biased variance of the batch (per channel)
               running_mean = (1 - momentum) * running_mean + momentum * mu
               running_var  = (1 - momentum) * running_var  + momentum * var * n / (n - 1)
        eval:  mu, var = running_mean, running_var
        y = (x - mu) / sqrt(var + eps) * weight + bias

    The running variance uses the unbiased estimate (n - 1), the normalization the biased one,
    exactly as ``torch.nn.functional.batch_norm``. The train/eval difference is the point:
    in training each example's output depends on the rest of its batch.
    """
    if x.dim() < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, ...), got {tuple(x.shape)}")
    dims = [0] + list(range(2, x.dim()))
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    if training:
        n = x.numel() // x.shape[1]
        if n <= 1:
            raise ValueError(f"batch_norm in training needs more than 1 value per channel, got {n}")
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        if running_mean is not None and running_var is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                running_var.mul_(1 - momentum).add_(var.detach() * (n / (n - 1)), alpha=momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm in eval mode needs running_mean and running_var")
        mean, var = running_mean, running_var
    y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


# ---------------------------------------------------------------------------------------------
# label smoothing
# ---------------------------------------------------------------------------------------------


def smooth_labels(targets: Tensor, num_classes: int, smoothing: float, dtype: torch.dtype | None = None
                  ) -> Tensor:
    """Smoothed target distribution: ``q = (1 - eps) * onehot(y) + eps / K`` (sums to 1).

    The true class gets ``1 - eps + eps/K``, every other class ``eps/K``; the model is never
    asked to push a logit to infinity.
    """
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
    dtype = dtype or torch.get_default_dtype()
    onehot = F.one_hot(targets.long(), num_classes).to(dtype)
    return onehot * (1.0 - smoothing) + smoothing / num_classes


def label_smoothing_cross_entropy(
    logits: Tensor, targets: Tensor, smoothing: float, reduction: str = "mean"
) -> Tensor:
    """Cross-entropy against :func:`smooth_labels`: ``-sum_k q_k log softmax(z)_k`` per example.

    Equals ``F.cross_entropy(logits, targets, label_smoothing=smoothing)``.
    """
    q = smooth_labels(targets, logits.shape[1], smoothing, dtype=logits.dtype)
    per_example = -(q * F.log_softmax(logits, dim=1)).sum(dim=1)
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    if reduction == "none":
        return per_example
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


# ---------------------------------------------------------------------------------------------
# Beta sampling (mixup, cutmix) through an explicit generator
# ---------------------------------------------------------------------------------------------


def sample_gamma(
    concentration: float, n: int, *, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``n`` samples of Gamma(concentration, 1) by Marsaglia & Tsang's method, from ``generator``.

    (torch.distributions cannot take a generator.) For concentration < 1 it samples
    Gamma(a + 1) and multiplies by ``U**(1/a)``. Returned on ``generator.device``.
    """
    if not concentration > 0:
        raise ValueError(f"concentration must be > 0, got {concentration}")
    dev = generator.device
    a = concentration + 1.0 if concentration < 1 else concentration
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(n, dtype=dtype, device=dev)
    todo = torch.ones(n, dtype=torch.bool, device=dev)
    while bool(todo.any()):
        z = torch.randn(n, generator=generator, dtype=dtype, device=dev)
        u = torch.rand(n, generator=generator, dtype=dtype, device=dev)
        v = (1 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        take = ok & todo
        out[take] = (d * v)[take]
        todo &= ~take
    if concentration < 1:
        u = torch.rand(n, generator=generator, dtype=dtype, device=dev)
        out = out * u ** (1.0 / concentration)
    return out


def sample_beta(
    a: float, b: float, n: int = 1, *, generator: torch.Generator, dtype: torch.dtype = torch.float64
) -> Tensor:
    """``n`` samples of Beta(a, b) as ``X / (X + Y)``, X ~ Gamma(a), Y ~ Gamma(b)."""
    x = sample_gamma(a, n, generator=generator, dtype=dtype)
    y = sample_gamma(b, n, generator=generator, dtype=dtype)
    return x / (x + y)


class Mixed(NamedTuple):
    """The result of :func:`mixup` / :func:`cutmix`."""

    inputs: Tensor
    targets: Tensor
    lam: float  # weight of the original example (for cutmix: the kept area fraction)
    perm: Tensor  # partner index of each example
    box: tuple[int, int, int, int] | None = None  # cutmix: (y1, y2, x1, x2), half-open


def _soft_targets(y: Tensor, num_classes: int | None, like: Tensor) -> Tensor:
    if y.is_floating_point():
        return y
    if num_classes is None:
        raise ValueError("integer class targets need num_classes")
    return F.one_hot(y.long(), num_classes).to(like.dtype)


def mixup(
    x: Tensor,
    y: Tensor,
    alpha: float = 0.2,
    *,
    generator: torch.Generator,
    num_classes: int | None = None,
    lam: float | None = None,
) -> Mixed:
    """mixup (Zhang et al., 2018): train on convex combinations of example pairs::

        lam ~ Beta(alpha, alpha);  j = random permutation of the batch
        x' = lam * x + (1 - lam) * x[j];   y' = lam * y + (1 - lam) * y[j]

    ``y`` is class indices (give ``num_classes``) or soft targets ``[N, K]``.
    """
    if lam is None:
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        lam = float(sample_beta(alpha, alpha, generator=generator)[0])
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    perm = _randperm(x.shape[0], generator, x)
    ys = _soft_targets(y, num_classes, x)
    return Mixed(lam * x + (1 - lam) * x[perm], lam * ys + (1 - lam) * ys[perm], lam, perm)


def cutmix(
    x: Tensor,
    y: Tensor,
    alpha: float = 1.0,
    *,
    generator: torch.Generator,
    num_classes: int | None = None,
    lam: float | None = None,
) -> Mixed:
    """CutMix (Yun et al., 2019): paste a box from a partner image, mix labels by area::

        lam ~ Beta(alpha, alpha); box of size (H sqrt(1-lam), W sqrt(1-lam)) at a uniform
        centre, clipped to the image; x'[box] = x[j][box]
        lam' = 1 - area(box) / (H W)          # the area actually kept, after clipping
        y' = lam' * y + (1 - lam') * y[j]

    ``x`` is ``[N, C, H, W]`` (any leading dims; the last two are spatial).
    """
    if lam is None:
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        lam = float(sample_beta(alpha, alpha, generator=generator)[0])
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    H, W = x.shape[-2], x.shape[-1]
    r = math.sqrt(1.0 - lam)
    ch, cw = int(H * r), int(W * r)
    # one draw for the centre, uniform over the H*W pixels
    centre = torch.randint(0, H * W, (1,), generator=generator, device=generator.device).item()
    cy, cx = divmod(int(centre), W)
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, H)
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, W)
    perm = _randperm(x.shape[0], generator, x)
    out = x.clone()
    out[..., y1:y2, x1:x2] = x[perm][..., y1:y2, x1:x2]
    lam_kept = 1.0 - (y2 - y1) * (x2 - x1) / (H * W)
    ys = _soft_targets(y, num_classes, x)
    return Mixed(out, lam_kept * ys + (1 - lam_kept) * ys[perm], lam_kept, perm, (y1, y2, x1, x2))


def cutout(
    x: Tensor, size: int, *, generator: torch.Generator, return_mask: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Cutout (DeVries & Taylor, 2017): zero a ``size x size`` square per image, all channels.

    The square's centre is uniform over the image and the square is clipped at the borders
    (so it may be smaller near the edges, as in the paper). ``x`` is ``[N, C, H, W]``; the
    mask ``[N, 1, H, W]`` (1 = kept) is returned too with ``return_mask=True``.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    N, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    cy = _randint(H, (N,), generator, x)
    cx = _randint(W, (N,), generator, x)
    rows = torch.arange(H, device=x.device)
    cols = torch.arange(W, device=x.device)
    y1 = (cy - size // 2)[:, None]
    x1 = (cx - size // 2)[:, None]
    in_y = (rows[None, :] >= y1) & (rows[None, :] < y1 + size)  # [N, H]
    in_x = (cols[None, :] >= x1) & (cols[None, :] < x1 + size)  # [N, W]
    keep = ~(in_y[:, :, None] & in_x[:, None, :])  # [N, H, W]
    mask = keep.unsqueeze(1).to(x.dtype)
    out = x * mask
    return (out, mask) if return_mask else out


# ---------------------------------------------------------------------------------------------
# stochastic depth
# ---------------------------------------------------------------------------------------------


def stochastic_depth(
    branch: Tensor,
    p: float,
    *,
    generator: torch.Generator,
    training: bool = True,
    mode: str = "row",
) -> Tensor:
    """Stochastic depth (Huang et al., 2016) on a residual branch's output, inverted scaling::

        train: y = branch * b / (1 - p),  b ~ Bernoulli(1 - p) per example ("row") or per
               batch ("batch")                                    =>  E[y] = branch
        eval:  y = branch

    Use as ``x + stochastic_depth(f(x), p, ...)``: a dropped example skips the block entirely.
    Same convention as ``torchvision.ops.stochastic_depth``.
    """
    _check_p(p)
    if mode not in ("row", "batch"):
        raise ValueError(f"mode must be 'row' or 'batch', got {mode!r}")
    if not training or p == 0.0:
        return branch
    if p == 1.0:
        return torch.zeros_like(branch)
    shape = [branch.shape[0] if mode == "row" else 1] + [1] * (branch.dim() - 1)
    keep = _rand(shape, generator, branch) >= p
    return branch * keep / (1.0 - p)


# ---------------------------------------------------------------------------------------------
# data augmentation
# ---------------------------------------------------------------------------------------------


def random_horizontal_flip(
    x: Tensor, p: float = 0.5, *, generator: torch.Generator, return_flags: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Flip each image of ``[N, ..., W]`` left-right with probability ``p`` (independently)."""
    _check_p(p)
    flags = _rand((x.shape[0],), generator, x, dtype=torch.float64) < p
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    out = torch.where(flags.reshape(shape), x.flip(-1), x)
    return (out, flags) if return_flags else out


def random_crop(
    x: Tensor,
    size: int | tuple[int, int],
    padding: int = 0,
    *,
    generator: torch.Generator,
    fill: float = 0.0,
    return_offsets: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Random crop with zero padding (the CIFAR recipe: pad 4, crop 32), per image::

        xp = pad(x, padding, value=fill)
        oy ~ U{0..Hp-h}, ox ~ U{0..Wp-w} per image;   y = xp[..., oy:oy+h, ox:ox+w]

    ``x`` is ``[N, C, H, W]``; offsets ``[N, 2]`` (in padded coordinates) are returned too with
    ``return_offsets=True``.
    """
    h, w = (size, size) if isinstance(size, int) else size
    xp = F.pad(x, (padding, padding, padding, padding), value=fill) if padding else x
    Hp, Wp = xp.shape[-2], xp.shape[-1]
    if h > Hp or w > Wp:
        raise ValueError(f"crop {h}x{w} is larger than the padded image {Hp}x{Wp}")
    N = x.shape[0]
    oy = _randint(Hp - h + 1, (N,), generator, x)
    ox = _randint(Wp - w + 1, (N,), generator, x)
    # gather windows with index arithmetic instead of a Python loop over the batch
    rows = (oy[:, None] + torch.arange(h, device=x.device)[None, :])  # [N, h]
    cols = (ox[:, None] + torch.arange(w, device=x.device)[None, :])  # [N, w]
    lead = [N] + list(xp.shape[1:-2])
    ri = rows.reshape([N] + [1] * (len(lead) - 1) + [h, 1]).expand(lead + [h, Wp])
    out = xp.gather(-2, ri)
    ci = cols.reshape([N] + [1] * (len(lead) - 1) + [1, w]).expand(lead + [h, w])
    out = out.gather(-1, ci)
    return (out, torch.stack([oy, ox], dim=1)) if return_offsets else out


# ---------------------------------------------------------------------------------------------
# gradient clipping
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def clip_grad_norm_(
    params: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0
) -> Tensor:
    """Rescale all gradients together so that their joint norm is at most ``max_norm``::

        n = || concat(g_1, ..., g_k) ||_norm_type
        g_i = g_i * min(1, max_norm / (n + 1e-6))

    Returns ``n`` (before clipping). One joint norm, so the update direction is preserved;
    same rule as ``torch.nn.utils.clip_grad_norm_``.
    """
    grads = [p.grad for p in _params(params) if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        norms = [g.detach().abs().max() for g in grads]
        total = torch.stack(norms).max()
    else:
        norms = [torch.linalg.vector_norm(g.detach(), norm_type) for g in grads]
        total = torch.linalg.vector_norm(torch.stack(norms), norm_type)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device))
    return total


@torch.no_grad()
def clip_grad_value_(params: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient entry to ``[-clip_value, clip_value]`` (changes the direction).

    Same rule as ``torch.nn.utils.clip_grad_value_``.
    """
    if clip_value < 0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value}")
    for p in _params(params):
        if p.grad is not None:
            p.grad.clamp_(-clip_value, clip_value)


# ---------------------------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------------------------


def _snapshot(module: nn.Module) -> dict[str, Tensor]:
    """A detached deep copy of the state dict (same devices as the module)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class EarlyStopping:
    """Stop when the validation metric has not improved for ``patience`` epochs, and keep the
    best epoch's weights::

        improved = metric < best - min_delta   (mode "min"; "max" flips the sign)
        if improved: best, best_epoch, best_state = metric, epoch, copy(model.state_dict())
        else:        bad += 1
        stop when bad >= patience

    Call :meth:`step` once per epoch after evaluation; when it returns True (or training ends)
    call :meth:`restore` to load the best weights back. The checkpoint is kept in memory, on
    the model's own devices.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, mode: str = "min") -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.num_bad_epochs = 0
        self.epoch = -1
        self.should_stop = False

    def _improved(self, metric: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return metric < self.best - self.min_delta
        return metric > self.best + self.min_delta

    def step(self, metric: float, model: nn.Module) -> bool:
        """Record this epoch's metric (and the model's weights if best); True means stop."""
        metric = float(metric)
        self.epoch += 1
        if math.isnan(metric):
            self.num_bad_epochs += 1  # a NaN is never an improvement
        elif self._improved(metric):
            self.best, self.best_epoch = metric, self.epoch
            self.best_state = _snapshot(model)
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        self.should_stop = self.num_bad_epochs >= self.patience
        return self.should_stop

    def restore(self, model: nn.Module) -> nn.Module:
        """Load the best epoch's weights into ``model``."""
        if self.best_state is None:
            raise RuntimeError("EarlyStopping.restore() before any step(): no checkpoint yet")
        model.load_state_dict(self.best_state)
        return model


# ---------------------------------------------------------------------------------------------
# weight averaging
# ---------------------------------------------------------------------------------------------


class EMA:
    """Exponential moving average of parameters (Polyak-style averaging with forgetting)::

        s_0 = w_0                      (a copy at construction)
        s_t = decay * s_{t-1} + (1 - decay) * w_t       after each optimizer step

    On a constant sequence ``w_t = c``: ``s_t = c + decay**t * (w_0 - c)``. Use
    :meth:`copy_to` (or :meth:`swap`) to evaluate with the averaged weights; buffers (e.g. batch
    norm statistics) are not averaged. Same update as ``torch.optim.swa_utils.AveragedModel``
    with ``get_ema_multi_avg_fn(decay)``.
    """

    def __init__(self, params: nn.Module | Iterable[Tensor], decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.params = list(params.parameters() if isinstance(params, nn.Module) else params)
        self.decay = decay
        self.shadow = [p.detach().clone() for p in self.params]
        self.num_updates = 0

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameters into the average."""
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1.0 - self.decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, params: nn.Module | Iterable[Tensor] | None = None) -> None:
        """Write the averaged values into ``params`` (default: the tracked parameters)."""
        target = self.params if params is None else list(
            params.parameters() if isinstance(params, nn.Module) else params)
        for s, p in zip(self.shadow, target):
            p.copy_(s)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange live and averaged weights (call again to swap back after evaluation)."""
        for s, p in zip(self.shadow, self.params):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


class PolyakAverage(EMA):
    """Polyak-Ruppert averaging: the arithmetic mean of all iterates seen so far::

        s_1 = w_1 (the parameters at construction);  s_n = s_{n-1} + (w_n - s_{n-1}) / n

    Same update as ``torch.optim.swa_utils.AveragedModel`` with its default averaging.
    """

    def __init__(self, params: nn.Module | Iterable[Tensor]) -> None:
        super().__init__(params, decay=0.0)
        self.num_updates = 1  # the copy at construction is the first averaged iterate

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current parameters into the running mean."""
        self.num_updates += 1
        for s, p in zip(self.shadow, self.params):
            s.add_((p.detach() - s) / self.num_updates)


# ---------------------------------------------------------------------------------------------
# snapshot ensembles
# ---------------------------------------------------------------------------------------------


class SnapshotEnsemble:
    """Snapshot ensembles (Huang et al., 2017): one training run with a cyclic (SGDR) LR; take a
    copy of the model at the end of each cycle (where the LR is lowest, see
    :func:`recipecheck.runtime.reference.schedules.sgdr_cycle_ends`) and average the members'
    predicted probabilities::

        p(y | x) = 1/M * sum_m softmax(f_m(x))

    Snapshots are deep copies in eval mode, independent of later training.
    """

    def __init__(self, max_members: int | None = None) -> None:
        if max_members is not None and max_members < 1:
            raise ValueError(f"max_members must be >= 1, got {max_members}")
        self.max_members = max_members
        self.members: list[nn.Module] = []

    def add(self, model: nn.Module) -> None:
        """Snapshot ``model`` (keeping only the newest ``max_members``)."""
        snap = copy.deepcopy(model).eval()
        for p in snap.parameters():
            p.requires_grad_(False)
        self.members.append(snap)
        if self.max_members is not None and len(self.members) > self.max_members:
            self.members.pop(0)

    def __len__(self) -> int:
        return len(self.members)

    @torch.no_grad()
    def predict_proba(self, x: Tensor, transform: Callable[[Tensor], Tensor] | None = None
                      ) -> Tensor:
        """Mean over members of ``softmax(member(x), dim=1)`` (or of ``transform(output)``)."""
        if not self.members:
            raise RuntimeError("SnapshotEnsemble has no members yet: call add() first")
        fn = transform or (lambda z: F.softmax(z, dim=1))
        return torch.stack([fn(m(x)) for m in self.members]).mean(dim=0)
