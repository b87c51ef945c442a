"""Reference optimizers written from scratch, with torch.optim's split.

Each optimizer comes as

* a pure update function (``sgd_update``, ``adam_update``, ...) that applies one step to one
  parameter tensor, given its gradient and an explicit ``state`` dict. It holds no state of its
  own: everything it remembers between steps (momentum buffers, moment estimates, the step
  count) lives in ``state``, so the function can be tested step by step against a formula;
* a :class:`torch.optim.Optimizer` subclass that validates the hyperparameters with clear
  ``ValueError`` messages and calls the update function for every parameter with a gradient.
  The classes are drop-in replacements for their ``torch.optim`` counterparts (same argument
  names, same defaults, same state semantics) so the tests can compare trajectories exactly.

The update functions modify ``param`` and the tensors in ``state`` in place (as torch's
functional API does) and run under ``torch.no_grad()``. State tensors are allocated with
``torch.zeros_like(param)``, so the code is device-agnostic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "SGD",
    "SGDVelocity",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamL2",
    "AdamW",
    "sgd_update",
    "sgd_velocity_update",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
]


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------


def _check_nonneg(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_unit_interval(name: str, value: float) -> None:
    """0 <= value < 1: a decay rate of exactly 1 would never forget the initial state."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


# ---------------------------------------------------------------------------------------------
# SGD, momentum, Nesterov
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def sgd_update(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> Tensor:
    """One SGD step (plain, heavy-ball momentum, or Nesterov) on ``param``, in place.

    Update rule (torch.optim.SGD's form; ``b`` is ``state["momentum_buffer"]``)::

        g = grad + weight_decay * x                 # L2 folded into the gradient
        if momentum > 0:
            if first step:  b = g                   # no dampening on the first step
            else:           b = momentum * b + (1 - dampening) * g
            if nesterov:    d = g + momentum * b    # look-ahead, change-of-variables form
            else:           d = b
        else:
            d = g
        x = x - lr * d

    The momentum form ``b = rho*b + g; x -= lr*b`` keeps the *unscaled* velocity; the other
    textbook form (``v = rho*v - lr*g; x += v``) is :func:`sgd_velocity_update`. The two give
    identical trajectories for a constant ``lr`` (``v = -lr * b``) and differ when the LR changes:
    here a new LR rescales the whole accumulated velocity at once.

    Nesterov in this form evaluates the gradient at the current iterate only. It is Sutskever
    et al.'s ``v = rho*v - lr*grad(x + rho*v); x += v`` rewritten in the shifted variable
    ``y = x + rho*v`` (the iterate that is stored is the look-ahead point).
    """
    g = grad
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = g.detach().clone()
            state["momentum_buffer"] = buf
        else:
            buf.mul_(momentum).add_(g, alpha=1 - dampening)
        d = g.add(buf, alpha=momentum) if nesterov else buf
    else:
        d = g
    param.add_(d, alpha=-lr)
    return param


@torch.no_grad()
def sgd_velocity_update(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> Tensor:
    """One step of SGD with momentum in the velocity form (CS231n / Sutskever), in place.

    Update rule (``v`` is ``state["velocity"]``, starting at zero)::

        g = grad + weight_decay * x
        v = momentum * v - lr * g
        x = x + v

    With a constant ``lr`` this is exactly :func:`sgd_update`'s ``b = rho*b + g; x -= lr*b``
    under ``v = -lr * b``. When the LR changes, the velocity keeps the old LRs baked into
    its history, so an LR drop takes effect gradually instead of at once.
    """
    g = grad
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    v = state.get("velocity")
    if v is None:
        v = torch.zeros_like(param)
        state["velocity"] = v
    v.mul_(momentum).add_(g, alpha=-lr)
    param.add_(v)
    return param


# ---------------------------------------------------------------------------------------------
# AdaGrad, RMSProp
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def adagrad_update(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    initial_accumulator_value: float = 0.0,
    eps: float = 1e-10,
) -> Tensor:
    """One AdaGrad step on ``param``, in place (Duchi et al., 2011).

    Update rule (``s`` is ``state["sum"]``, ``t`` is ``state["step"]``)::

        t = t + 1
        g = grad + weight_decay * x
        s = s + g * g                        # per-coordinate sum of squared gradients
        x = x - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    The effective per-coordinate LR only shrinks: coordinates with large past gradients
    slow down for good, which is why AdaGrad stalls on long non-convex runs.
    """
    s = state.get("sum")
    if s is None:
        s = torch.full_like(param, initial_accumulator_value)
        state["sum"] = s
        state["step"] = 0
    state["step"] += 1
    t = state["step"]
    g = grad
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    clr = lr / (1 + (t - 1) * lr_decay)
    s.addcmul_(g, g, value=1.0)
    param.addcdiv_(g, s.sqrt().add_(eps), value=-clr)
    return param


@torch.no_grad()
def rmsprop_update(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    centered: bool = False,
) -> Tensor:
    """One RMSProp step on ``param``, in place (Hinton's lecture 6e).

    Update rule (``r`` = ``state["square_avg"]``, ``m`` = ``state["grad_avg"]``,
    ``b`` = ``state["momentum_buffer"]``, all starting at zero)::

        g = grad + weight_decay * x
        r = alpha * r + (1 - alpha) * g * g     # leaky average of squared gradients
        if centered:
            m = alpha * m + (1 - alpha) * g
            denom = sqrt(r - m * m) + eps       # running variance instead of raw 2nd moment
        else:
            denom = sqrt(r) + eps
        if momentum > 0:
            b = momentum * b + g / denom
            x = x - lr * b
        else:
            x = x - lr * g / denom

    Unlike AdaGrad the average forgets, so the effective LR can grow again. There is no bias
    correction: r starts at 0, so the first steps are larger than lr by about 1/sqrt(1-alpha).
    """
    r = state.get("square_avg")
    if r is None:
        r = torch.zeros_like(param)
        state["square_avg"] = r
        state["step"] = 0
        if centered:
            state["grad_avg"] = torch.zeros_like(param)
        if momentum > 0:
            state["momentum_buffer"] = torch.zeros_like(param)
    state["step"] += 1
    g = grad
    if weight_decay != 0:
        g = g.add(param, alpha=weight_decay)
    r.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    if centered:
        m = state["grad_avg"]
        m.lerp_(g, 1 - alpha)
        denom = r.addcmul(m, m, value=-1).sqrt_().add_(eps)
    else:
        denom = r.sqrt().add_(eps)
    if momentum > 0:
        b = state["momentum_buffer"]
        b.mul_(momentum).addcdiv_(g, denom)
        param.add_(b, alpha=-lr)
    else:
        param.addcdiv_(g, denom, value=-lr)
    return param


# ---------------------------------------------------------------------------------------------
# Adam family
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def adam_update(
    param: Tensor,
    grad: Tensor,
    state: dict[str, Any],
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    bias_correction: bool = True,
) -> Tensor:
    """One Adam / Adam+L2 / AdamW step on ``param``, in place (Kingma & Ba; Loshchilov & Hutter).

    Update rule (``m`` = ``state["exp_avg"]``, ``v`` = ``state["exp_avg_sq"]``, both starting
    at zero; ``t`` = ``state["step"]``)::

        t = t + 1
        if decoupled_weight_decay:               # AdamW: shrink the weights directly
            x = x * (1 - lr * weight_decay)
            g = grad
        else:                                    # Adam + L2: decay enters the gradient ...
            g = grad + weight_decay * x          # ... and is then divided by sqrt(v)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        if bias_correction:
            m_hat = m / (1 - beta1**t)           # m, v start at 0 and are biased towards it
            v_hat = v / (1 - beta2**t)
        else:
            m_hat, v_hat = m, v
        x = x - lr * m_hat / (sqrt(v_hat) + eps)

    Why the decay must be decoupled: with L2 the decay term is normalized by ``sqrt(v)``
    like the gradient, so weights with large gradients are barely decayed; AdamW decays every
    weight by the same factor ``1 - lr * weight_decay`` per step.

    Why bias correction: at t = 1, ``m = (1-beta1) g`` and ``sqrt(v) = sqrt(1-beta2) |g|``, so
    the uncorrected first step is ``lr * (1-beta1)/sqrt(1-beta2)`` per coordinate instead of
    ``lr``: 3.2x too large with the default betas (0.9, 0.999), too small when beta1 is close
    to 1 relative to beta2 (e.g. betas (0.99, 0.9): 0.03x).
    """
    m = state.get("exp_avg")
    if m is None:
        m = torch.zeros_like(param)
        state["exp_avg"] = m
        state["exp_avg_sq"] = torch.zeros_like(param)
        state["step"] = 0
    v = state["exp_avg_sq"]
    state["step"] += 1
    t = state["step"]
    g = grad
    if weight_decay != 0:
        if decoupled_weight_decay:
            param.mul_(1 - lr * weight_decay)
        else:
            g = g.add(param, alpha=weight_decay)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    if bias_correction:
        bc1 = 1 - beta1**t
        bc2_sqrt = (1 - beta2**t) ** 0.5
    else:
        bc1 = 1.0
        bc2_sqrt = 1.0
    # Same association as torch: (sqrt(v) / sqrt(bc2)) + eps, step size lr / bc1.
    denom = (v.sqrt() / bc2_sqrt).add_(eps)
    param.addcdiv_(m, denom, value=-lr / bc1)
    return param


# ---------------------------------------------------------------------------------------------
# Optimizer classes
# ---------------------------------------------------------------------------------------------


class _ReferenceOptimizer(torch.optim.Optimizer):
    """Calls ``self._update`` for each parameter with a gradient, passing the group's options."""

    _update: Callable[..., Tensor]
    _hyper: tuple[str, ...]

    def _kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        return {name: group[name] for name in self._hyper}

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Apply one update to every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            kwargs = self._kwargs(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                type(self)._update(p, p.grad, self.state[p], **kwargs)
        return loss


class SGD(_ReferenceOptimizer):
    """Stochastic gradient descent with optional momentum and Nesterov, like torch.optim.SGD.

    Update rule: see :func:`sgd_update`::

        g = grad + weight_decay * x
        b = momentum * b + (1 - dampening) * g     (b = g on the first step)
        d = g + momentum * b if nesterov else b
        x = x - lr * d
    """

    _update = staticmethod(sgd_update)
    _hyper = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        _check_nonneg("lr", lr)
        _check_unit_interval("momentum", momentum)
        _check_unit_interval("dampening", dampening)
        _check_nonneg("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"nesterov=True requires momentum > 0 and dampening = 0, got momentum={momentum}, "
                f"dampening={dampening}"
            )
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov,
        )
        super().__init__(params, defaults)


class SGDVelocity(_ReferenceOptimizer):
    """SGD with momentum in the velocity form ``v = rho*v - lr*g; x += v``.

    Update rule: see :func:`sgd_velocity_update`. Same trajectory as :class:`SGD` with the same
    momentum while the LR is constant; it reacts gradually to LR changes.
    """

    _update = staticmethod(sgd_velocity_update)
    _hyper = ("lr", "momentum", "weight_decay")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
    ) -> None:
        _check_nonneg("lr", lr)
        _check_unit_interval("momentum", momentum)
        _check_nonneg("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))


class Adagrad(_ReferenceOptimizer):
    """AdaGrad, like torch.optim.Adagrad.

    Update rule: see :func:`adagrad_update`::

        s = s + g * g
        x = x - lr / (1 + (t-1) * lr_decay) * g / (sqrt(s) + eps)
    """

    _update = staticmethod(adagrad_update)
    _hyper = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        _check_nonneg("lr", lr)
        _check_nonneg("lr_decay", lr_decay)
        _check_nonneg("weight_decay", weight_decay)
        _check_nonneg("initial_accumulator_value", initial_accumulator_value)
        _check_nonneg("eps", eps)
        defaults = dict(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps,
        )
        super().__init__(params, defaults)


class RMSprop(_ReferenceOptimizer):
    """RMSProp, like torch.optim.RMSprop.

    Update rule: see :func:`rmsprop_update`::

        r = alpha * r + (1 - alpha) * g * g
        x = x - lr * g / (sqrt(r) + eps)          (plus optional centering and momentum)
    """

    _update = staticmethod(rmsprop_update)
    _hyper = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        _check_nonneg("lr", lr)
        _check_unit_interval("alpha", alpha)
        _check_nonneg("eps", eps)
        _check_nonneg("weight_decay", weight_decay)
        _check_unit_interval("momentum", momentum)
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered,
        )
        super().__init__(params, defaults)


class Adam(_ReferenceOptimizer):
    """Adam, like torch.optim.Adam; ``weight_decay`` is L2 (added to the gradient).

    Update rule: see :func:`adam_update`::

        g = grad + weight_decay * x
        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g
        x = x - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

    ``bias_correction=False`` drops the two ``1 - beta**t`` divisions; it exists to show the
    first-step problem (the first step is off by ``(1-beta1)/sqrt(1-beta2)``).
    """

    _update = staticmethod(adam_update)
    _hyper = ()  # unused: _kwargs below unpacks betas and adds the class's decay mode
    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        bias_correction: bool = True,
    ) -> None:
        _check_nonneg("lr", lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        _check_unit_interval("betas[0]", betas[0])
        _check_unit_interval("betas[1]", betas[1])
        _check_nonneg("eps", eps)
        _check_nonneg("weight_decay", weight_decay)
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            bias_correction=bias_correction,
        )
        super().__init__(params, defaults)

    def _kwargs(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(
            lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], decoupled_weight_decay=self._decoupled,
            bias_correction=group["bias_correction"],
        )


class AdamL2(Adam):
    """Adam with L2 regularization: ``g = grad + weight_decay * x`` before the moments.

    Identical to ``Adam(weight_decay=...)`` (and to torch.optim.Adam's ``weight_decay``); the
    separate name makes the contrast with :class:`AdamW` explicit in experiments. The decay
    term is divided by ``sqrt(v_hat)``, so parameters with large gradients are decayed less.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        bias_correction: bool = True,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, bias_correction=bias_correction)


class AdamW(Adam):
    """AdamW (decoupled weight decay), like torch.optim.AdamW.

    Update rule: see :func:`adam_update` with ``decoupled_weight_decay=True``::

        x = x * (1 - lr * weight_decay)          # before, and independent of, the moments
        m = beta1 * m + (1 - beta1) * grad;   v = beta2 * v + (1 - beta2) * grad * grad
        x = x - lr * m_hat / (sqrt(v_hat) + eps)
    """

    _decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        bias_correction: bool = True,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, bias_correction=bias_correction)
