"""Sanity suite: checks to run *before* the real training (``recipecheck run --sanity``).

:func:`run_sanity` runs, on deep copies of the model (the user's model, its gradients,
buffers, train/eval flags and the global RNG state are left exactly as they were):

* **RT101 initial-loss-off**: the loss at initialization with regularization off (dropout off,
  no penalty) against the chance level of the criterion: ``ln C`` for softmax cross-entropy
  (and NLL over log-probabilities) with C classes, ``ln 2`` per output for binary
  cross-entropy with logits (weighted by ``pos_weight``/``weight`` when given), and for
  multi-class hinge ``C - 1`` in its textbook form, i.e. ``margin**p * (C - 1) / C`` for torch's
  ``MultiMarginLoss`` (which divides by C). The check fires when
  ``|loss - chance| > max(rel_tol * chance, abs_tol)`` with ``rel_tol = 0.25`` and
  ``abs_tol = 0.3`` (nats per example) by default: uniform-ish logits land well inside, a
  badly scaled init or a large final bias does not.
* **RT102 gradient-check-failed**: analytic gradients against centered finite differences
  ``(L(w+h) - L(w-h)) / 2h`` on a float64 copy with dropout off (only the dropout modules are
  put in eval mode; BatchNorm stays in training mode, which is deterministic given the batch),
  every forward pass run with the same private seed so that any remaining randomness is
  identical between evaluations. A few coordinates of every trainable tensor (biases included)
  are checked: the one with the largest gradient plus random ones from the suite's own
  generator. Relative error ``|a - n| / max(|a|, |n|)``: below 1e-7 great, below 1e-4 ok,
  1e-4..1e-2 acceptable only where kinks are possible (a ReLU-like pre-activation or a hinge/L1
  loss within ``h`` of its kink), above that (or above 1e-4 without kinks) an error. A
  coordinate whose ``+h``/``-h`` evaluations put a ReLU-family input on different sides of a kink
  is re-measured with a smaller ``h`` and, if it still straddles the kink, reported as a kink
  and not counted; a coordinate above 1e-4 is re-measured with ``h/100`` and ``h/1000`` (a kink
  the module hooks cannot see resolves, a wrong gradient stays wrong). Kinks are also "possible"
  when the forward pass calls a kinked torch function (``F.relu``, max pooling, ``clamp``...).
  The cost is bounded: 4 examples, 3 coordinates in each of at most 24 parameter tensors spread
  over the depth, and a time budget after which the coordinates checked so far decide.
* **RT114 cannot-overfit-tiny-batch**: a copy trained on a tiny subset (``overfit_examples``,
  20 by default) with weight decay 0 and dropout off must reach a loss of at most
  ``overfit_ratio`` (5%) of its initial loss within ``steps`` optimizer steps.
* **RT115 regularization-not-increasing-loss**: with a ``regularizer(model) -> Tensor`` (the
  penalty the training loop adds to the loss), the objective ``loss + s * penalty`` must rise
  with the strength ``s`` and the penalty must reach the gradients. Without one, the
  optimizer's own weight decay is checked: with the data gradient zeroed, one step with the
  weight decay raised (x10) must move the decayed weights toward zero (``dw . w < 0``), i.e.
  descend on the ``loss + wd/2 * ||w||^2`` objective that a larger weight decay raises.

Randomness: the suite draws one seed from ``generator`` (a private ``torch.Generator``; a
fixed default seed when None) and runs every check under a forked global RNG seeded with it,
restoring the global CPU (and CUDA, when initialized) RNG state afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .findings import RuntimeFinding

__all__ = [
    "SanityResult",
    "run_sanity",
    "chance_level",
    "check_initial_loss",
    "gradient_check",
    "check_overfit",
    "check_regularization",
    "preserve_rng",
    "isolated",
    "clean_copy",
    "CATALOG",
]

#: code -> (name, severity, static twin), as in shared/RULES.md
CATALOG: dict[str, tuple[str, str, Optional[str]]] = {
    "RT101": ("initial-loss-off", "warning", "RC303"),
    "RT102": ("gradient-check-failed", "error", None),
    "RT114": ("cannot-overfit-tiny-batch", "error", None),
    "RT115": ("regularization-not-increasing-loss", "warning", None),
}

DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)

# module type -> kink positions of its (piecewise) activation, as a function of the module
_KINKS: list[tuple[type, Callable[[nn.Module], Sequence[float]]]] = [
    (nn.ReLU, lambda m: (0.0,)),
    (nn.LeakyReLU, lambda m: (0.0,)),
    (nn.PReLU, lambda m: (0.0,)),
    (nn.RReLU, lambda m: (0.0,)),
    (nn.SELU, lambda m: (0.0,)),
    (nn.ReLU6, lambda m: (0.0, 6.0)),
    (nn.Hardtanh, lambda m: (float(m.min_val), float(m.max_val))),
    (nn.Threshold, lambda m: (float(m.threshold),)),
    (nn.Hardshrink, lambda m: (-float(m.lambd), float(m.lambd))),
    (nn.Softshrink, lambda m: (-float(m.lambd), float(m.lambd))),
    (nn.Hardsigmoid, lambda m: (-3.0, 3.0)),
    (nn.Hardswish, lambda m: (-3.0, 3.0)),
    (nn.ELU, lambda m: (0.0,) if float(m.alpha) != 1.0 else ()),
]
_KINKY_LOSSES = (nn.L1Loss, nn.MultiMarginLoss, nn.MultiLabelMarginLoss, nn.HingeEmbeddingLoss,
                 nn.MarginRankingLoss, nn.SoftMarginLoss, nn.TripletMarginLoss)
_KINKY_LOSS_FNS = (F.l1_loss, F.multi_margin_loss, F.multilabel_margin_loss, F.hinge_embedding_loss,
                   F.margin_ranking_loss)

GREAT, OK, BAD = 1e-7, 1e-4, 1e-2

# torch functions (by name: torch.relu, F.relu, Tensor.relu alike) whose output has kinks; a
# forward pass through any of them makes finite differences kink-prone even when no activation
# module is visible (F.relu in a forward method, max pooling, clamping)
_KINKY_FUNCS = frozenset({
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "rrelu", "rrelu_", "prelu", "hardtanh", "hardtanh_",
    "threshold", "threshold_", "hardshrink", "softshrink", "hardswish", "hardsigmoid", "clamp", "clamp_",
    "clip", "clip_", "clamp_min", "clamp_max", "abs", "abs_", "max", "min", "amax", "amin", "maximum", "minimum",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "fractional_max_pool2d", "fractional_max_pool3d", "l1_loss", "multi_margin_loss", "hinge_embedding_loss",
    "margin_ranking_loss", "triplet_margin_loss",
})


def _kinky_ops_used(run: Callable[[], Any]) -> bool:
    """Whether ``run()`` calls a torch function with kinks (see ``_KINKY_FUNCS``)."""
    from torch.overrides import TorchFunctionMode

    class Probe(TorchFunctionMode):
        hit = False

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if not Probe.hit and getattr(func, "__name__", "") in _KINKY_FUNCS:
                Probe.hit = True
            return func(*args, **(kwargs or {}))

    with Probe():
        run()
    return Probe.hit


@dataclass
class SanityResult:
    """What :func:`run_sanity` found: ``findings`` (RT codes) and ``details`` (measured numbers)."""

    findings: list[RuntimeFinding] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no finding of severity ``error`` was raised."""
        return not any(f.severity == "error" for f in self.findings)

    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        return {"findings": [f.to_json() for f in self.findings], "details": self.details}


def _finding(code: str, message: str, where: Optional[str] = None) -> RuntimeFinding:
    name, severity, twin = CATALOG[code]
    if twin:
        message = f"{message} Static twin: {twin}."
    return RuntimeFinding(code=code, name=name, severity=severity, message=message, where=where,
                          static_twin=twin)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def preserve_rng(seed: Optional[int] = None):
    """Fork the global RNG: restore the CPU (and initialized CUDA) RNG states on exit.

    When ``seed`` is given the forked RNG is seeded with it inside the block.
    """
    cpu_state = torch.random.get_rng_state()
    cuda_states = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_states = torch.cuda.get_rng_state_all()
    try:
        if seed is not None:
            torch.random.default_generator.manual_seed(seed)
            if cuda_states is not None:
                torch.cuda.manual_seed_all(seed)
        yield
    finally:
        torch.random.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
_GLOBAL_MODULE_HOOKS = ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_forward_hooks_with_kwargs",
                        "_global_forward_hooks_always_called", "_global_backward_pre_hooks", "_global_backward_hooks")
_GLOBAL_OPTIM_HOOKS = ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks")


def _hook_module(hook: Any) -> str:
    """The module that defines ``hook`` (a function, a bound method or a callable object)."""
    fn = getattr(hook, "func", hook)  # functools.partial
    owner = getattr(fn, "__self__", None)
    if owner is not None:
        return type(owner).__module__ or ""
    if hasattr(fn, "__code__"):
        return getattr(fn, "__module__", None) or ""
    return type(fn).__module__ or ""  # WeightNorm, pruning methods, recipecheck's hook objects


def _is_ours(hook: Any) -> bool:
    """True for a hook installed by recipecheck (a function/method defined in this package)."""
    return _hook_module(hook).startswith("recipecheck.")


def _is_torch_internal(hook: Any) -> bool:
    """True for hooks that are part of the model's function and installed by torch itself
    (``torch.nn.utils.weight_norm``, ``spectral_norm``, pruning masks)."""
    mod = _hook_module(hook)
    return mod == "torch" or mod.startswith("torch.")


def clean_copy(model: nn.Module, keep_user_hooks: bool = False) -> nn.Module:
    """``copy.deepcopy(model)`` without module hooks that would observe the copy: recipecheck's
    own (a monitor attached to the user's model must neither be copied nor see the copy's forward
    passes) and, unless ``keep_user_hooks``, the user's (the suite's hundreds of forward passes
    must not reach the user's logging, counters or profilers). Hooks installed by torch itself
    (weight norm, spectral norm, pruning) are part of the model's function and are kept, shared
    with the original."""
    memo: dict[int, Any] = {}
    for mod in model.modules():
        dropped = set()
        for attr in _HOOK_DICTS[:4]:
            d = mod.__dict__.get(attr)
            if d:
                dropped |= {k for k, v in d.items()
                            if _is_ours(v) or not (keep_user_hooks or _is_torch_internal(v))}
        if not dropped:
            continue
        for attr in _HOOK_DICTS:  # the hook dicts and the per-hook flag dicts, keyed alike
            d = mod.__dict__.get(attr)
            if d is not None:
                memo[id(d)] = type(d)((k, v) for k, v in d.items() if k not in dropped)
    return copy.deepcopy(model, memo)


def count_user_hooks(model: nn.Module) -> int:
    """How many forward/backward module hooks :func:`clean_copy` leaves out as the user's."""
    n = 0
    for mod in model.modules():
        for attr in _HOOK_DICTS[:4]:
            d = mod.__dict__.get(attr)
            if d:
                n += sum(1 for v in d.values() if not (_is_ours(v) or _is_torch_internal(v)))
    return n


def optimizer_factory_like(optimizer: torch.optim.Optimizer) -> Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]:
    """A factory building ``type(optimizer)`` with the optimizer's defaults on other parameters.

    ``optimizer.defaults`` may hold entries the constructor does not accept (AdamW records
    ``decoupled_weight_decay``, which only ``Adam.__init__`` takes; ``differentiable`` is for
    higher-order use): only the keyword arguments of the constructor's signature are passed."""
    import inspect

    cls = type(optimizer)
    defaults = dict(optimizer.defaults)
    defaults.pop("differentiable", None)
    try:
        sig = inspect.signature(cls.__init__)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
            accepted = {n for n, p in sig.parameters.items()
                        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
            defaults = {k: v for k, v in defaults.items() if k in accepted}
    except (TypeError, ValueError):  # no signature (C extension): pass the defaults as they are
        pass

    def factory(params, _cls=cls, _kw=defaults):
        return _cls(params, **_kw)

    return factory


class ShapedLoss:
    """The training loss as the script computed it: ``fn(input, target, **kwargs)`` where the
    input the loss saw may be a reshaped model output (``output.view(-1, vocab)`` in a language
    model) or one element of a tuple output. ``input_shape`` is that input's shape at the first
    training step; model outputs are adapted to it (same trailing dimension, any batch size).
    ``fn`` is a loss module or a functional loss (``F.cross_entropy``, ``F.nll_loss``, ...)."""

    def __init__(self, fn: Callable, input_shape: Optional[Sequence[int]] = None, **kwargs: Any):
        self.fn = fn
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.kwargs = kwargs

    def __getattr__(self, name: str) -> Any:  # reduction, weight, pos_weight, label_smoothing, ...
        if name in ("fn", "kwargs", "input_shape"):
            raise AttributeError(name)
        if name in self.kwargs:
            return self.kwargs[name]
        if isinstance(self.fn, nn.Module):
            return getattr(self.fn, name)
        raise AttributeError(name)

    @property
    def inner(self) -> Callable:
        return self.fn

    def adapt(self, out: Any) -> Any:
        shape = self.input_shape
        if isinstance(out, (tuple, list)):  # (logits, aux) outputs: the tensor the loss took
            tensors = [t for t in out if isinstance(t, torch.Tensor) and t.is_floating_point()]
            match = [t for t in tensors if shape and t.dim() and t.shape[-1] == shape[-1]]
            out = (match or tensors or [out])[0]
        if not isinstance(out, torch.Tensor) or not shape or tuple(out.shape[1:]) == shape[1:]:
            return out
        tail = tuple(shape[1:])
        if out.dim() > len(shape) and (not tail or tuple(out.shape[-len(tail):]) == tail):
            return out.reshape(-1, *tail)  # flattened tokens: (T, B, V) -> (T*B, V); (N, 1) -> (N,)
        return out

    def __call__(self, out: Any, target: Any) -> Any:
        return self.fn(self.adapt(out), target, **self.kwargs)

    def copy(self, dtype: Optional[torch.dtype] = None) -> "ShapedLoss":
        fn = self.fn
        if isinstance(fn, nn.Module):
            fn = clean_copy(fn)
            if dtype is not None:
                fn = fn.to(dtype)
        kwargs = {k: (v.to(dtype) if dtype is not None and isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                  for k, v in self.kwargs.items()}
        return ShapedLoss(fn, self.input_shape, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", None) or type(self.fn).__name__
        kw = {k: (f"tensor{tuple(v.shape)}" if isinstance(v, torch.Tensor) else v) for k, v in self.kwargs.items()}
        return f"ShapedLoss({name}, input_shape={self.input_shape}" + (f", {kw}" if kw else "") + ")"


def _unwrap_loss(loss_fn: Callable) -> Callable:
    return loss_fn.fn if isinstance(loss_fn, ShapedLoss) else loss_fn


def _adapt(loss_fn: Callable, out: Any) -> Any:
    return loss_fn.adapt(out) if isinstance(loss_fn, ShapedLoss) else out


@contextlib.contextmanager
def isolated():
    """Hide torch's *global* module and optimizer hooks (e.g. those of ``recipecheck run``)
    while the suite trains its copies, so that a monitor never mistakes them for the user's
    training; everything registered is back in place, in order, on exit."""
    import torch.nn.modules.module as _mm
    import torch.optim.optimizer as _om

    saved = []
    for owner, names in ((_mm, _GLOBAL_MODULE_HOOKS), (_om, _GLOBAL_OPTIM_HOOKS)):
        for name in names:
            d = getattr(owner, name, None)
            if isinstance(d, dict) and d:
                saved.append((d, dict(d)))
                d.clear()
    try:
        yield
    finally:
        for d, items in saved:
            added = dict(d)
            d.clear()
            d.update(items)
            d.update(added)


def _model_device(model: nn.Module) -> Optional[torch.device]:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return None


def _map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _first_len(obj: Any) -> Optional[int]:
    if isinstance(obj, torch.Tensor):
        return obj.shape[0] if obj.dim() else None
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        for v in obj:
            n = _first_len(v)
            if n is not None:
                return n
    return None


def _batch_dims(obj: Any, out: list) -> list:
    if isinstance(obj, torch.Tensor):
        out.append(obj.shape[0] if obj.dim() else None)
    elif isinstance(obj, dict):
        for v in obj.values():
            _batch_dims(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _batch_dims(v, out)
    return out


def _take(obj: Any, n: int, *others: Any) -> Any:
    """The first ``n`` examples of ``obj``; unchanged when ``obj`` and ``others`` (the targets)
    do not share a first dimension (sequence-first inputs with flattened targets), where slicing
    would pair inputs with the wrong targets."""
    dims = {d for o in (obj, *others) for d in _batch_dims(o, []) if d is not None}
    if len(dims) > 1:
        return obj
    return _map_tensors(obj, lambda t: t[:n] if t.dim() else t)


def _forward(model: nn.Module, x: Any) -> Any:
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (list, tuple)):
        return model(*x)
    return model(x)


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, dict) and "target" in batch:
        rest = {k: v for k, v in batch.items() if k != "target"}
        return rest.get("input", rest), batch["target"]
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError("batch must be (inputs, targets) or a dict with 'input' and 'target'")


def _scalar(loss: Any) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss_fn must return a tensor, got {type(loss).__name__}")
    return loss if loss.dim() == 0 else loss.mean()


def _dropout_off(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, DROPOUT_TYPES):
            m.eval()


def _copy_loss_fn(loss_fn: Callable, dtype: Optional[torch.dtype] = None) -> Callable:
    if isinstance(loss_fn, ShapedLoss):
        return loss_fn.copy(dtype)
    if isinstance(loss_fn, nn.Module):
        fn = clean_copy(loss_fn)
        if dtype is not None:
            fn = fn.to(dtype)
        return fn
    return loss_fn


def _training_copy(model: nn.Module) -> nn.Module:
    m = clean_copy(model)
    m.train()
    _dropout_off(m)
    for p in m.parameters():
        p.grad = None
    return m


def _set_weight_decay(optimizer: torch.optim.Optimizer, scale: float) -> list[float]:
    old = []
    for g in optimizer.param_groups:
        wd = g.get("weight_decay", 0.0) or 0.0
        old.append(wd)
        if "weight_decay" in g:
            g["weight_decay"] = wd * scale
    return old


def _default_optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=1e-2)


def _seed_from(generator: Optional[torch.Generator]) -> int:
    if generator is None:
        return 20240617
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


# --------------------------------------------------------------------------------------------
# RT101: initial loss vs chance
# --------------------------------------------------------------------------------------------


def _loss_kind(loss_fn: Callable) -> Optional[str]:
    loss_fn = _unwrap_loss(loss_fn)
    if isinstance(loss_fn, nn.CrossEntropyLoss) or loss_fn is F.cross_entropy:
        return "cross_entropy"
    if isinstance(loss_fn, nn.NLLLoss) or loss_fn is F.nll_loss:
        return "nll"
    if isinstance(loss_fn, nn.BCEWithLogitsLoss) or loss_fn is F.binary_cross_entropy_with_logits:
        return "bce_logits"
    if isinstance(loss_fn, nn.MultiMarginLoss) or loss_fn is F.multi_margin_loss:
        return "hinge"
    return None


def chance_level(loss_fn: Callable, output: torch.Tensor, target: torch.Tensor,
                 num_classes: Optional[int] = None) -> Optional[tuple[float, str]]:
    """The expected loss of a chance-level (uniform) predictor, per example, or None if unknown.

    Returns ``(value, formula)``; for ``reduction="sum"`` multiply by the number of examples
    (the suite compares per-example means).
    """
    kind = _loss_kind(loss_fn)
    if kind is None or not isinstance(output, torch.Tensor):
        return None
    if kind in ("cross_entropy", "nll", "hinge"):
        c = num_classes or (output.shape[1] if output.dim() >= 2 else None)
        if not c or c < 2:
            return None
        if kind == "hinge":
            margin = float(getattr(loss_fn, "margin", 1.0))
            p = int(getattr(loss_fn, "p", 1))
            if getattr(loss_fn, "weight", None) is not None:
                return None
            return margin**p * (c - 1) / c, f"(C-1)/C * margin^p = {c - 1}/{c} (multi-class hinge, C={c})"
        return math.log(c), f"ln C = ln {c}"
    # BCE with logits: ln 2 per element, scaled by pos_weight on positives and by weight
    pos_weight = getattr(loss_fn, "pos_weight", None)
    weight = getattr(loss_fn, "weight", None)
    with torch.no_grad():
        t = target.to(torch.float64)
        factor = torch.ones_like(t)
        if pos_weight is not None:
            factor = pos_weight.to(t) * t + (1 - t)
        if weight is not None:
            factor = factor * weight.to(t)
        scale = float(factor.mean())
    if pos_weight is None and weight is None:
        return math.log(2.0), "ln 2 (binary cross-entropy with logits)"
    return math.log(2.0) * scale, f"ln 2 x {scale:.3g} (binary cross-entropy with logits, weighted)"


def _per_example(loss_fn: Callable, loss: torch.Tensor, target: torch.Tensor) -> float:
    value = float(loss.detach().double().mean())
    if getattr(loss_fn, "reduction", "mean") == "sum":
        n = target.numel() if _loss_kind(loss_fn) == "bce_logits" else (target.shape[0] if target.dim() else 1)
        value /= max(1, n)
    return value


def check_initial_loss(model: nn.Module, loss_fn: Callable, batch: Any, *, num_classes: Optional[int] = None,
                       rel_tol: float = 0.25, abs_tol: float = 0.3) -> tuple[list[RuntimeFinding], dict[str, Any]]:
    """RT101 on a copy of ``model`` (dropout off, no penalty). Returns (findings, details)."""
    x, y = _split_batch(batch)
    m = _training_copy(model)
    fn = _copy_loss_fn(loss_fn)
    with torch.no_grad():
        out = _adapt(loss_fn, _forward(m, x))
        loss = fn(out, y)
    if not isinstance(out, torch.Tensor):
        return [], {"status": "skipped", "reason": "the model output is not a tensor"}
    chance = chance_level(loss_fn, out, y, num_classes)
    measured = _per_example(loss_fn, loss, y)
    details: dict[str, Any] = {"loss": measured}
    if chance is None:
        details.update(status="skipped", reason="no known chance level for this loss function")
        return [], details
    value, formula = chance
    tol = max(rel_tol * value, abs_tol)
    details.update(chance=value, formula=formula, tolerance=tol)
    if not math.isfinite(measured):
        details["status"] = "fail"
        return [_finding("RT101", f"The initial loss is {measured} (expected about {value:.4g} = {formula}): "
                         "the model produces non-finite values before any training. Fix: check the "
                         "initialization and the input preprocessing.")], details
    dev = measured - value
    details["status"] = "ok" if abs(dev) <= tol else "fail"
    if abs(dev) <= tol:
        return [], details
    if dev > 0:
        why = ("the initial predictions are confidently wrong, so the first steps are spent undoing the "
               "initialization (large gradients, possible instability)")
        fix = ("initialize the last layer with small weights and a zero bias (or a bias matching the class "
               "prior), use a fan-in scaled init, and make sure no softmax precedes the loss")
    else:
        why = ("a loss below chance before any training means the targets leak into the inputs, the loss is "
               "mis-scaled, or the targets are not what the criterion expects")
        fix = "check the target encoding, the loss reduction and the data split"
    return [_finding("RT101", f"Initial loss {measured:.4g} vs chance level {value:.4g} ({formula}), off by "
                     f"{abs(dev):.3g} (tolerance {tol:.3g}): {why}. Fix: {fix}.")], details


# --------------------------------------------------------------------------------------------
# RT102: gradient check
# --------------------------------------------------------------------------------------------


class _KinkRecorder:
    """Forward hooks on ReLU-family modules that record their inputs (float64 copy only)."""

    def __init__(self, model: nn.Module) -> None:
        self.handles = []
        self.inputs: list[torch.Tensor] = []
        self.kinks: list[Sequence[float]] = []
        self.recording = False
        for mod in model.modules():
            points = None
            for typ, fn in _KINKS:
                if isinstance(mod, typ):
                    points = fn(mod)
                    break
            if points:
                idx = len(self.kinks)
                self.kinks.append(points)
                self.handles.append(mod.register_forward_pre_hook(self._hook(idx)))

    def _hook(self, idx: int):
        def hook(module, args):
            if self.recording and args and isinstance(args[0], torch.Tensor):
                self.inputs.append((idx, args[0].detach().clone()))
            return None

        return hook

    def capture(self, run: Callable[[], float]) -> tuple[float, list]:
        self.inputs = []
        self.recording = True
        try:
            value = run()
        finally:
            self.recording = False
        return value, self.inputs

    def crossed(self, plus: list, minus: list) -> bool:
        for (i, a), (j, b) in zip(plus, minus):
            if i != j or a.shape != b.shape:
                return True
            for k in self.kinks[i]:
                if bool(((a > k) != (b > k)).any()):
                    return True
        return False

    def near(self, inputs: list, h: float) -> bool:
        for i, a in inputs:
            for k in self.kinks[i]:
                if bool(((a - k).abs() <= h).any()):
                    return True
        return False

    def remove(self) -> None:
        for hd in self.handles:
            hd.remove()
        self.handles = []


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices out of ``range(n)`` spread evenly, first and last included."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def gradient_check(model: nn.Module, loss_fn: Callable, batch: Any, *, coords: int = 3, h: float = 1e-5,
                   max_examples: int = 4, seed: int = 0, generator: Optional[torch.Generator] = None,
                   max_tensors: int = 24, time_budget: Optional[float] = 60.0,
                   progress: Optional[Callable[[int, int], None]] = None) -> tuple[list[RuntimeFinding], dict[str, Any]]:
    """RT102: analytic vs centered-difference gradients on a float64 copy. Returns (findings, details).

    Cost is bounded: ``max_examples`` examples, ``coords`` coordinates in each of at most
    ``max_tensors`` parameter tensors (spread over the depth of the model, first and last
    included), and a ``time_budget`` in seconds after which the coordinates checked so far decide
    (``details["budget_exhausted"]``). ``progress(done, total)`` is called after each coordinate."""
    import time

    t_start = time.perf_counter()
    x, y = _split_batch(batch)
    n = _first_len(x)
    if n is not None and n > max_examples:
        x, y = _take(x, max_examples, y), _take(y, max_examples, x)
    device = _model_device(model)
    m = clean_copy(model)
    if device is not None and device.type == "mps":  # no float64 on MPS: check on the CPU
        m = m.to("cpu")
        device = torch.device("cpu")
    m = m.to(torch.float64)
    m.train()
    _dropout_off(m)
    to = (lambda t: t.to(device=device, dtype=torch.float64) if t.is_floating_point() else t.to(device)) \
        if device is not None else (lambda t: t.double() if t.is_floating_point() else t)
    x, y = _map_tensors(x, to), _map_tensors(y, to)
    fn = _copy_loss_fn(loss_fn, torch.float64)
    params = [(name, p) for name, p in m.named_parameters() if p.requires_grad]
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)

    def loss_value() -> torch.Tensor:
        with preserve_rng(seed):
            return _scalar(fn(_forward(m, x), y))

    for _, p in params:
        p.grad = None
    loss = loss_value()
    details: dict[str, Any] = {"h": h, "examples": _first_len(x), "coordinates": [],
                               "parameter_tensors": len(params)}
    if not params:
        details.update(status="skipped", reason="no trainable parameters")
        return [], details
    if not loss.requires_grad:
        details.update(status="skipped", reason="the loss does not depend on any trainable parameter")
        return [], details
    torch.autograd.backward(loss)  # not Tensor.backward: a monitor may have patched it
    analytic = {name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)) for name, p in params}

    eps = torch.finfo(torch.float64).eps
    loss_scale = max(1.0, abs(float(loss.detach())))
    rec = _KinkRecorder(m)
    kinks_possible = isinstance(_unwrap_loss(loss_fn), _KINKY_LOSSES) or _unwrap_loss(loss_fn) in _KINKY_LOSS_FNS
    coords_out = details["coordinates"]
    try:
        with torch.no_grad():
            _, base_inputs = rec.capture(lambda: float(loss_value()))
            if rec.near(base_inputs, h):
                kinks_possible = True
            if not kinks_possible and _kinky_ops_used(lambda: float(loss_value())):
                kinks_possible = True  # F.relu, max pooling, clamp: kinks the recorder cannot locate
                details["functional_kinks"] = True
            picked = [params[i] for i in _spread(len(params), max_tensors)]
            plan = []
            for name, p in picked:
                flat = p.view(-1)
                a_flat = analytic[name].reshape(-1)
                k = min(coords, flat.numel())
                chosen = [int(a_flat.abs().argmax())]
                if k > 1:
                    perm = torch.randperm(flat.numel(), generator=gen)[: k + 1].tolist()
                    chosen += [i for i in perm if i != chosen[0]][: k - 1]
                plan.append((name, flat, a_flat, chosen))
            total = sum(len(c) for *_, c in plan)
            details.update(tensors_checked=len(picked), planned=total, budget_s=time_budget,
                           budget_exhausted=False)
            done = 0
            for name, flat, a_flat, chosen in plan:
                if details["budget_exhausted"]:
                    break
                for i in chosen:
                    if time_budget is not None and done and time.perf_counter() - t_start > time_budget:
                        details["budget_exhausted"] = True
                        break
                    orig = float(flat[i])
                    ana = float(a_flat[i])

                    def measure(step: float) -> tuple[float, float, bool]:
                        flat[i] = orig + step
                        lp, in_p = rec.capture(lambda: float(loss_value()))
                        flat[i] = orig - step
                        lm, in_m = rec.capture(lambda: float(loss_value()))
                        flat[i] = orig
                        num = (lp - lm) / (2 * step)
                        denom = max(abs(ana), abs(num))
                        rel = 0.0 if denom == 0.0 else abs(ana - num) / denom
                        # both ~0 (e.g. a bias followed by BatchNorm): a difference within the
                        # round-off of the finite difference is agreement, whatever its ratio
                        noise = 64 * eps * loss_scale / step
                        if abs(ana - num) <= noise:
                            rel = min(rel, abs(ana - num) / max(denom, noise / GREAT * 0.1))
                        return num, rel, rec.crossed(in_p, in_m)

                    num, rel, kink = measure(h)
                    if kink:
                        num, rel, kink = measure(h * 1e-2)
                    elif not rel <= OK:
                        # a kink the recorder cannot see (F.relu, max pooling, clamp) lies within h:
                        # with a smaller h the true gradient agrees, a wrong one stays wrong
                        for smaller in (h * 1e-2, h * 1e-3):
                            n2, r2, _ = measure(smaller)
                            if r2 < rel:
                                num, rel = n2, r2
                            if rel <= OK:
                                break
                    coords_out.append({"param": name, "index": i, "analytic": ana, "numerical": num,
                                       "rel_error": rel, "kink": kink})
                    done += 1
                    if progress is not None:
                        progress(done, total)
    finally:
        rec.remove()

    counted = [c for c in coords_out if not c["kink"] and math.isfinite(c["rel_error"])]
    nonfinite = [c for c in coords_out if not math.isfinite(c["rel_error"])]
    worst = max(counted, key=lambda c: c["rel_error"], default=None)
    worst_rel = worst["rel_error"] if worst else 0.0
    details.update(max_rel_error=worst_rel, kinks_possible=kinks_possible,
                   kink_coordinates=sum(c["kink"] for c in coords_out), checked=len(coords_out),
                   seconds=round(time.perf_counter() - t_start, 3))
    bad_limit = BAD if kinks_possible else OK
    if nonfinite:
        worst = nonfinite[0]
        worst_rel = math.inf
    if worst_rel < GREAT:
        verdict = "great"
    elif worst_rel < OK:
        verdict = "ok"
    elif worst_rel <= bad_limit:
        verdict = "warn"  # 1e-4..1e-2 with kinks nearby: plausible kink artifact, not a failure
    else:
        verdict = "error"
    details["status"] = verdict
    if verdict != "error":
        return [], details
    failing = sorted({c["param"] for c in counted + nonfinite if not (c["rel_error"] <= bad_limit)})
    where = worst["param"]
    msg = (f"Gradient check failed: analytic and centered finite-difference gradients disagree in "
           f"{len(failing)} of {len(params)} parameter tensors ({', '.join(failing[:5])}"
           f"{', ...' if len(failing) > 5 else ''}); worst relative error {worst_rel:.3g} at {where}"
           f"[{worst['index']}] (analytic {worst['analytic']:.6g}, numerical {worst['numerical']:.6g}; "
           f"threshold {bad_limit:g}{', kinks possible' if kinks_possible else ', no kinks nearby'}). "
           "The optimizer follows a wrong direction, so training silently fails or converges to "
           "garbage. Fix: check custom autograd.Function backward methods, in-place operations and "
           "hand-written gradient code in the modules feeding this parameter.")
    return [_finding("RT102", msg, where=where)], details


# --------------------------------------------------------------------------------------------
# RT114: overfit a tiny batch
# --------------------------------------------------------------------------------------------


def check_overfit(model: nn.Module, loss_fn: Callable, batch: Any, *,
                  optimizer_factory: Optional[Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]] = None,
                  examples: int = 20, steps: int = 200, ratio: float = 0.05,
                  abs_floor: float = 1e-3, time_budget: Optional[float] = None,
                  progress: Optional[Callable[[int, int], None]] = None) -> tuple[list[RuntimeFinding], dict[str, Any]]:
    """RT114: train a copy on ``examples`` examples (weight decay 0, dropout off) for ``steps`` steps;
    the loss must fall to ``max(ratio * initial, abs_floor)``. Returns (findings, details).

    When ``time_budget`` seconds run out first, the check is inconclusive (status
    ``"inconclusive"``, no finding): a slow machine is no evidence against the model."""
    import time

    t_start = time.perf_counter()
    x, y = _split_batch(batch)
    x, y = _take(x, examples, y), _take(y, examples, x)
    m = _training_copy(model)
    fn = _copy_loss_fn(loss_fn)
    params = [p for p in m.parameters() if p.requires_grad]
    details: dict[str, Any] = {"examples": _first_len(x), "steps_budget": steps}
    how = ("The model cannot memorize a handful of examples, so it cannot learn the full data set "
           "either: the gradient does not reach the weights, the output ignores the input, or the "
           "LR/optimizer is unusable.")
    if not params:
        details.update(status="fail", reason="no trainable parameters")
        return [_finding("RT114", "Cannot overfit a tiny batch: the model has no trainable parameter "
                         "(all requires_grad=False). " + how + " Fix: unfreeze the layers that should "
                         "learn (requires_grad=True) and pass them to the optimizer.")], details
    opt = (optimizer_factory or _default_optimizer)(params)
    _set_weight_decay(opt, 0.0)
    target = None
    losses: list[float] = []
    reached = None
    for step in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = _scalar(fn(_forward(m, x), y))
        value = float(loss.detach())
        losses.append(value)
        if target is None:
            target = max(ratio * value, abs_floor)
            details["initial_loss"] = value
            details["target_loss"] = target
        if not math.isfinite(value):
            break
        if value <= target:
            reached = step
            break
        if step == steps:
            break
        if progress is not None:
            progress(step, steps)
        if time_budget is not None and step and time.perf_counter() - t_start > time_budget:
            details.update(status="inconclusive", reason=f"time budget of {time_budget:g} s reached at step {step}",
                           final_loss=value, steps=step, budget_exhausted=True)
            return [], details
        if not loss.requires_grad:
            details.update(status="fail", reason="the loss does not depend on any trainable parameter",
                           final_loss=value)
            return [_finding("RT114", "Cannot overfit a tiny batch: the loss does not depend on any "
                             "trainable parameter (the output is detached, computed under no_grad, or "
                             "built from frozen layers). " + how + " Fix: remove the .detach()/no_grad/"
                             ".item() between the parameters and the loss.")], details
        torch.autograd.backward(loss)
        opt.step()
    finite = [v for v in losses if math.isfinite(v)]
    details.update(final_loss=losses[-1], best_loss=min(finite) if finite else None, steps=len(losses) - 1,
                   loss_curve=losses[:: max(1, len(losses) // 50)])
    if reached is not None:
        details["status"] = "ok"
        details["reached_at_step"] = reached
        return [], details
    details["status"] = "fail"
    best = details["best_loss"]
    msg = (f"Cannot overfit a tiny batch: after {len(losses) - 1} steps on {details['examples']} examples "
           f"(weight decay 0, dropout off) the loss went from {losses[0]:.4g} to {losses[-1]:.4g} "
           f"(best {best if best is None else f'{best:.4g}'}), not below {target:.3g}. {how} Fix: check "
           "that the model's output depends on its input and that no .detach()/frozen layer blocks the "
           "gradient, then the loss/target pairing, then try a larger or smaller LR.")
    return [_finding("RT114", msg)], details


# --------------------------------------------------------------------------------------------
# RT115: regularization raises the loss
# --------------------------------------------------------------------------------------------


def check_regularization(model: nn.Module, loss_fn: Callable, batch: Any, *,
                         regularizer: Optional[Callable[[nn.Module], Any]] = None,
                         strengths: Sequence[float] = (0.0, 1e-3, 1e-1, 1.0),
                         optimizer_factory: Optional[Callable] = None,
                         wd_scale: float = 10.0) -> tuple[list[RuntimeFinding], dict[str, Any]]:
    """RT115. With ``regularizer``: ``loss + s * regularizer(model)`` must rise with ``s`` and the
    penalty must have a gradient. Otherwise: the optimizer's weight decay (raised ``wd_scale``x)
    must move the weights it decays toward zero. Returns (findings, details)."""
    x, y = _split_batch(batch)
    m = _training_copy(model)
    fn = _copy_loss_fn(loss_fn)
    if regularizer is not None:
        with torch.no_grad():
            data_loss = float(_scalar(fn(_forward(m, x), y)))
        penalty = regularizer(m)
        pen_value = float(penalty.detach()) if isinstance(penalty, torch.Tensor) else float(penalty)
        objective = [data_loss + s * pen_value for s in strengths]
        details: dict[str, Any] = {"mode": "regularizer", "data_loss": data_loss, "penalty": pen_value,
                                   "strengths": list(strengths), "objective": objective}
        has_grad = False
        if isinstance(penalty, torch.Tensor) and penalty.requires_grad:
            grads = torch.autograd.grad(penalty, [p for p in m.parameters() if p.requires_grad], allow_unused=True)
            has_grad = any(g is not None and bool((g != 0).any()) for g in grads)
        details["penalty_has_gradient"] = has_grad
        increasing = all(b > a for a, b in zip(objective, objective[1:]))
        details["status"] = "ok" if (increasing and has_grad) else "fail"
        if not increasing:
            return [_finding("RT115", f"Raising the regularization strength does not raise the initial loss: "
                             f"loss + s*penalty = {', '.join(f'{v:.4g}' for v in objective)} for s = "
                             f"{', '.join(f'{s:g}' for s in strengths)} (penalty {pen_value:.4g}). The "
                             "penalty is zero or negative, so it cannot regularize (a sign error rewards "
                             "large weights). Fix: add a non-negative penalty, e.g. + lam * sum(w.pow(2).sum()), "
                             "computed from the model's weights.")], details
        if not has_grad:
            return [_finding("RT115", f"The regularization penalty ({pen_value:.4g}) raises the loss value "
                             "but has no gradient with respect to the parameters (detached, .item(), or "
                             "computed on copies), so it never reaches the update. Fix: compute the penalty "
                             "from the live parameters without .detach()/.item()/no_grad.")], details
        return [], details

    # optimizer weight decay
    if optimizer_factory is None:
        return [], {"mode": "weight_decay", "status": "skipped", "reason": "no regularizer and no optimizer_factory"}
    params = [p for p in m.parameters() if p.requires_grad]
    if not params:
        return [], {"mode": "weight_decay", "status": "skipped", "reason": "no trainable parameters"}
    opt = optimizer_factory(params)
    own = {id(p) for p in params}
    decayed = [p for g in opt.param_groups if (g.get("weight_decay") or 0) > 0 for p in g["params"] if id(p) in own]
    wds = [g.get("weight_decay", None) for g in opt.param_groups]
    details = {"mode": "weight_decay", "weight_decay": wds, "decayed_tensors": len(decayed)}
    if not any((w or 0) > 0 for w in wds):
        details.update(status="skipped", reason="the optimizer applies no weight decay")
        return [], details
    if not decayed:
        details["status"] = "fail"
        return [_finding("RT115", f"Raising weight decay cannot raise the loss: the optimizer's groups with "
                         f"weight_decay > 0 hold none of the model's parameters (weight_decay={wds}), so the "
                         "regularization never applies. Fix: build the optimizer (and its param groups) from "
                         "this model's parameters.")], details
    _set_weight_decay(opt, wd_scale)
    with torch.no_grad():
        data_loss = float(_scalar(fn(_forward(m, x), y)))
    snapshot = [p.detach().clone() for p in decayed]
    before = torch.stack([w.double().pow(2).sum() for w in snapshot]).sum()
    wd_big = max((g.get("weight_decay") or 0) for g in opt.param_groups)
    for p in params:
        p.grad = torch.zeros_like(p)  # data gradient off: only the decay acts
    opt.step()
    after = torch.stack([p.detach().double().pow(2).sum() for p in decayed]).sum()
    # the update must point toward zero (dw . w < 0): robust to adaptive steps that overshoot
    toward = torch.stack([((p.detach() - w).double() * w.double()).sum() for p, w in zip(decayed, snapshot)]).sum()
    before_f, after_f, toward_f = float(before), float(after), float(toward)
    details.update(data_loss=data_loss, penalty_before=0.5 * wd_big * before_f, penalty_after=0.5 * wd_big * after_f,
                   objective=[data_loss, data_loss + 0.5 * wd_big * before_f], weight_norm_sq_before=before_f,
                   weight_norm_sq_after=after_f, update_dot_weight=toward_f)
    if toward_f < 0:
        details["status"] = "ok"
        return [], details
    details["status"] = "fail"
    return [_finding("RT115", f"Raising weight decay does not act: with weight_decay raised {wd_scale:g}x "
                     f"(to {wd_big:g}) and the data gradient zero, one {type(opt).__name__} step changed "
                     f"the decayed weights by dw.w = {toward_f:.3g} (||w||^2 {before_f:.6g} -> {after_f:.6g}) instead of "
                     "moving them toward zero, so the loss + wd/2*||w||^2 objective is not what is optimized. Fix: use an optimizer "
                     "that implements weight_decay (e.g. torch.optim.AdamW/SGD) or add the penalty to the "
                     "loss.")], details


# --------------------------------------------------------------------------------------------
# the suite
# --------------------------------------------------------------------------------------------


def run_sanity(
    model: nn.Module,
    loss_fn: Callable,
    batch: Any,
    *,
    optimizer_factory: Optional[Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]] = None,
    num_classes: Optional[int] = None,
    steps: int = 200,
    generator: Optional[torch.Generator] = None,
    regularizer: Optional[Callable[[nn.Module], Any]] = None,
    checks: Sequence[str] = ("RT101", "RT102", "RT114", "RT115"),
    overfit_examples: int = 20,
    gradcheck_coords: int = 3,
    gradcheck_h: float = 1e-5,
    gradcheck_examples: int = 4,
    gradcheck_budget: Optional[float] = 60.0,
    overfit_budget: Optional[float] = None,
    progress: Optional[Callable[[str, int, int], None]] = None,
    initial_loss_rel_tol: float = 0.25,
    initial_loss_abs_tol: float = 0.3,
) -> SanityResult:
    """Run the sanity checks on copies of ``model``; the model, its buffers, gradients and train
    flag, and the global RNG state are unchanged afterwards.

    ``batch`` is ``(inputs, targets)`` (inputs: a tensor, a tuple of positional tensors or a dict
    of keyword tensors); give at least ``overfit_examples`` examples. ``loss_fn(output, target)``
    returns the training loss *without* any penalty. ``optimizer_factory(params)`` builds the
    training optimizer (used for RT114 with its weight decay set to 0, default Adam(lr=1e-2),
    and for RT115's weight-decay check); ``regularizer(model)`` returns the penalty the training
    loop adds to the loss, if any. ``steps`` is RT114's step budget. Randomness comes from
    ``generator`` (a ``torch.Generator``) only.

    The gradient check is bounded by ``gradcheck_examples`` examples, ``gradcheck_coords``
    coordinates per sampled tensor and ``gradcheck_budget`` seconds; RT114 by
    ``overfit_budget`` seconds (then inconclusive, never a finding). ``progress(code, done,
    total)`` is called when a check starts (``done == 0``), as the gradient check advances and
    when a check ends (``done == total``); each check's ``details`` carry its ``seconds``.

    A check that raises is recorded under ``details[code]["status"] == "crashed"`` with the
    error, and the other checks still run.
    """
    import time

    result = SanityResult()
    report = progress or (lambda code, done, total: None)
    seed = _seed_from(generator)
    device = _model_device(model)
    if device is not None:  # the batch goes where the model lives (copies only; user tensors untouched)
        batch = _map_tensors(batch, lambda t: t.to(device))
    gen = torch.Generator().manual_seed(seed)
    plan = {
        "RT101": lambda: check_initial_loss(model, loss_fn, batch, num_classes=num_classes,
                                            rel_tol=initial_loss_rel_tol, abs_tol=initial_loss_abs_tol),
        "RT102": lambda: gradient_check(model, loss_fn, batch, coords=gradcheck_coords, h=gradcheck_h,
                                        seed=seed, generator=gen, max_examples=gradcheck_examples,
                                        time_budget=gradcheck_budget,
                                        progress=lambda done, total: report("RT102", done, total)),
        "RT114": lambda: check_overfit(model, loss_fn, batch, optimizer_factory=optimizer_factory,
                                       examples=overfit_examples, steps=steps, time_budget=overfit_budget,
                                       progress=lambda done, total: report("RT114", done, total)),
        "RT115": lambda: check_regularization(model, loss_fn, batch, regularizer=regularizer,
                                              optimizer_factory=optimizer_factory),
    }
    keys = {"RT101": "initial_loss", "RT102": "gradient_check", "RT114": "overfit", "RT115": "regularization"}
    for code in checks:
        if code not in plan:
            raise ValueError(f"unknown sanity check {code!r}; expected one of {sorted(plan)}")
        report(code, 0, 1)
        t0 = time.perf_counter()
        try:
            with preserve_rng(seed), isolated():
                findings, details = plan[code]()
        except Exception as exc:  # a broken check never stops the others
            findings, details = [], {"status": "crashed", "error": f"{type(exc).__name__}: {exc}"}
        result.findings.extend(findings)
        details["code"] = code
        details.setdefault("seconds", round(time.perf_counter() - t0, 3))
        report(code, 1, 1)
        result.details[keys[code]] = details
    return result
