"""A tiny deterministic trainer for the validation experiments.

It trains small MLP/CNN/RNN models on in-memory tensors, with every knob the rules talk
about exposed as a configuration field, including the *buggy* variants (scheduler stepped
at the wrong interval, missing ``zero_grad``, ``zero_grad`` between ``backward`` and
``step``, unscaled gradient accumulation, unshuffled data, evaluation in train mode,
softmax before ``CrossEntropyLoss``), so an experiment can run the buggy and the fixed recipe
on the same seed and compare.

Determinism: model initialization and batch order draw from explicit ``torch.Generator``
objects seeded from ``seed``. Layers that draw from torch's global RNG (Dropout) run inside
``torch.random.fork_rng`` seeded with ``seed``, so the caller's global RNG state is left as
it was. Same seed, same device, same torch build -> bitwise-equal parameters.

Device-agnostic: pass ``device=``; nothing inside the ops names a device except the CPU
generator used for permutations (indices are moved to the data's device).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F

from .data import make_generator

Device = Union[str, torch.device, None]

__all__ = [
    "TrainConfig",
    "History",
    "StepInfo",
    "mlp",
    "small_cnn",
    "RNNRegressor",
    "init_weights",
    "make_optimizer",
    "train",
    "evaluate",
    "hidden_activations",
    "parameter_vector",
    "single_thread",
    "seeded_global_rng",
]


# ----------------------------------------------------------------------------- models

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (64,),
    *,
    activation: str = "relu",
    block: Sequence[str] = ("linear", "act"),
    dropout: float = 0.5,
    bias: bool = True,
    init: Union[str, float] = "default",
    seed: int = 0,
) -> nn.Sequential:
    """A multilayer perceptron; each hidden layer is built from ``block``.

    ``block`` names the layers of one hidden block in order, from ``"linear"``, ``"act"``,
    ``"bn"`` (BatchNorm1d) and ``"dropout"`` (``nn.Dropout(dropout)``): ``("linear", "act",
    "dropout", "bn")`` puts Dropout right before BatchNorm. The output layer is a plain Linear.
    Weights are initialized with :func:`init_weights` (``init``) from a generator seeded with
    ``seed``.
    """
    with _no_global_rng():
        model = _build_mlp(in_dim, out_dim, hidden, activation, block, dropout, bias)
    init_weights(model, init, generator=make_generator(seed))
    return model


@contextlib.contextmanager
def _no_global_rng():
    """Module constructors draw their default init from the global RNG; keep the caller's state."""
    with torch.random.fork_rng(devices=[]):
        yield


def _build_mlp(in_dim, out_dim, hidden, activation, block, dropout, bias) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = in_dim
    for width in hidden:
        for kind in block:
            if kind == "linear":
                layers.append(nn.Linear(prev, width, bias=bias))
                prev = width
            elif kind == "act":
                layers.append(_ACTIVATIONS[activation]())
            elif kind == "bn":
                layers.append(nn.BatchNorm1d(prev))
            elif kind == "dropout":
                layers.append(nn.Dropout(dropout))
            else:
                raise ValueError(f"unknown block element {kind!r}")
    layers.append(nn.Linear(prev, out_dim))
    return nn.Sequential(*layers)


def small_cnn(
    in_channels: int = 1, num_classes: int = 10, width: int = 16, *, init: Union[str, float] = "default", seed: int = 0
) -> nn.Sequential:
    """A two-convolution CNN for 8x8 images (scikit-learn digits)."""
    with _no_global_rng():
        model = _build_cnn(in_channels, num_classes, width)
    init_weights(model, init, generator=make_generator(seed))
    return model


def _build_cnn(in_channels: int, num_classes: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 2x2
        nn.Flatten(),
        nn.Linear(2 * width * 4, num_classes),
    )


class RNNRegressor(nn.Module):
    """An Elman RNN (tanh) over a sequence, read out from the last hidden state by a Linear layer.

    ``recurrent_gain`` scales the orthogonal recurrent matrix: above 1 the recurrence expands,
    the regime where gradients explode on long sequences.
    """

    def __init__(
        self,
        input_size: int = 2,
        hidden: int = 32,
        out_dim: int = 1,
        *,
        cell: str = "rnn",
        recurrent_gain: float = 1.0,
        seed: int = 0,
    ):
        super().__init__()
        rnn_cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        with _no_global_rng():
            self.rnn = rnn_cls(input_size, hidden, batch_first=True)
            self.head = nn.Linear(hidden, out_dim)
        g = make_generator(seed)
        init_weights(self, "default", generator=g)
        if cell == "rnn":
            with torch.no_grad():
                q, _ = torch.linalg.qr(torch.randn(hidden, hidden, generator=g))
                self.rnn.weight_hh_l0.copy_(q * recurrent_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def init_weights(model: nn.Module, scheme: Union[str, float] = "default", *, generator: torch.Generator) -> nn.Module:
    """(Re-)initialize every Linear/Conv/RNN weight of ``model`` from ``generator``.

    Schemes: ``"default"`` (torch's own default, reproduced: ``U(-1/sqrt(fan_in),
    1/sqrt(fan_in))`` for weights and biases), ``"kaiming"`` (``N(0, 2/fan_in)``),
    ``"xavier"`` (``N(0, 2/(fan_in+fan_out))``), ``"normal"`` (``N(0, 1)``, ignores fan-in),
    ``"small"`` (``N(0, 0.01^2)``), ``"zeros"``, or a number ``c`` (every weight ``= c``).
    For the non-default schemes biases are set to zero. Normalization layers are left alone.
    Draws happen on the CPU and are copied in, so the result does not depend on the device.
    """
    for module in model.modules():
        weights: list[tuple[torch.Tensor, int, int]] = []
        biases: list[tuple[torch.Tensor, int]] = []
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            w = module.weight
            fan_in = w[0].numel()
            fan_out = w.shape[0] * (w[0][0].numel() if w.dim() > 2 else 1)
            weights.append((w, fan_in, fan_out))
            if module.bias is not None:
                biases.append((module.bias, fan_in))
        elif isinstance(module, nn.RNNBase):
            for name, p in module.named_parameters():
                fan = module.hidden_size
                if name.startswith("weight"):
                    weights.append((p, fan, fan))
                else:
                    biases.append((p, fan))
        for w, fan_in, fan_out in weights:
            _fill(w, _draw_weight(scheme, w.shape, fan_in, fan_out, generator, rnn=isinstance(module, nn.RNNBase)))
        for b, fan_in in biases:
            if scheme == "default":
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                _fill(b, _uniform(b.shape, bound, generator))
            else:
                _fill(b, torch.zeros(b.shape))
    return model


def _uniform(shape: torch.Size, bound: float, g: torch.Generator) -> torch.Tensor:
    return torch.empty(shape).uniform_(-bound, bound, generator=g)


def _draw_weight(scheme, shape, fan_in, fan_out, g, *, rnn=False) -> torch.Tensor:
    if isinstance(scheme, (int, float)) and not isinstance(scheme, bool):
        return torch.full(shape, float(scheme))
    if scheme == "default":
        # kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)); RNNs use the same bound with hidden_size
        return _uniform(shape, 1.0 / math.sqrt(fan_in), g)
    if scheme == "kaiming":
        return torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
    if scheme == "xavier":
        return torch.randn(shape, generator=g) * math.sqrt(2.0 / (fan_in + fan_out))
    if scheme == "normal":
        return torch.randn(shape, generator=g)
    if scheme == "small":
        return torch.randn(shape, generator=g) * 0.01
    if scheme == "zeros":
        return torch.zeros(shape)
    raise ValueError(f"unknown init scheme {scheme!r}")


def _fill(p: torch.Tensor, value: torch.Tensor) -> None:
    with torch.no_grad():
        p.copy_(value.to(dtype=p.dtype, device=p.device))


# ----------------------------------------------------------------------------- training

@dataclass
class StepInfo:
    """What a step callback sees, after ``optimizer.step()``."""

    step: int
    epoch: int
    loss: float
    model: nn.Module
    optimizer: torch.optim.Optimizer


@dataclass
class TrainConfig:
    """One training recipe. Fields marked *bug* reproduce a rule's mistake when set.

    - ``optimizer``: ``"sgd" | "adam" | "adamw" | "rmsprop" | "adagrad"`` or a factory
      ``f(params) -> Optimizer``; ``lr``, ``momentum``, ``nesterov``, ``weight_decay`` feed the named ones.
    - ``scheduler``: a factory ``f(optimizer, steps_per_epoch, epochs) -> LRScheduler``;
      ``scheduler_interval``: ``"batch"`` or ``"epoch"`` (*bug* when it disagrees with the
      scheduler's horizon: RC201/RC202).
    - ``loss``: ``"cross_entropy" | "mse"`` or ``f(output, target) -> loss``.
    - ``output_transform``: applied to the model output before the loss (*bug*: softmax
      before cross-entropy, RC506).
    - ``batch_size``: ``None`` for full batch. ``shuffle`` (*bug* when False on sorted
      data, RC401).
    - ``zero_grad``: ``"before_backward"`` (default), ``"after_step"``, ``"never"`` (*bug*
      RC101), ``"between_backward_and_step"`` (*bug* RC102).
    - ``accumulation_steps`` k and ``scale_accumulated_loss`` (*bug* when False: RC105).
    - ``clip_grad_norm``: ``None`` for no clipping (RC605).
    - ``l2_penalty``: ``lambda * sum ||W||^2`` over weight matrices added to the loss.
    - ``eval_mode``: call ``model.eval()`` for evaluation (*bug* when False: RC701).
    - ``max_steps``: stop after this many optimizer steps.
    """

    epochs: int = 10
    batch_size: Optional[int] = 32
    optimizer: Union[str, Callable[..., torch.optim.Optimizer]] = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    scheduler: Optional[Callable[[torch.optim.Optimizer, int, int], Any]] = None
    scheduler_interval: str = "epoch"
    loss: Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = "cross_entropy"
    output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    shuffle: bool = True
    zero_grad: str = "before_backward"
    accumulation_steps: int = 1
    scale_accumulated_loss: bool = True
    clip_grad_norm: Optional[float] = None
    l2_penalty: float = 0.0
    eval_mode: bool = True
    max_steps: Optional[int] = None
    record_update_ratio: bool = False


@dataclass
class History:
    """Per-step and per-epoch records of one run.

    ``loss``, ``lr``, ``grad_norm`` (total gradient norm seen by ``step()``, before clipping)
    and ``update_ratio`` (``||Δw||/||w||`` over the weight matrices, if recorded) have one
    entry per optimizer step; ``epoch_*`` and ``val_*`` one per epoch (evaluated at its end).
    """

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    update_ratio: list[float] = field(default_factory=list)
    epoch_lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    steps: int = 0
    rt_codes: list[str] = field(default_factory=list)  # RT codes the runtime monitor reported (monitor=...)
    rt_findings: list[Any] = field(default_factory=list)  # the monitor's RuntimeFinding objects

    @property
    def final_train_acc(self) -> float:
        return self.train_acc[-1] if self.train_acc else float("nan")

    @property
    def final_val_acc(self) -> float:
        return self.val_acc[-1] if self.val_acc else float("nan")


def make_optimizer(cfg: TrainConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` (or built by its factory)."""
    params = list(params)
    if callable(cfg.optimizer):
        return cfg.optimizer(params)
    name = cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def _loss_fn(cfg: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if callable(cfg.loss):
        return cfg.loss
    if cfg.loss == "cross_entropy":
        return F.cross_entropy
    if cfg.loss == "mse":
        return F.mse_loss
    raise ValueError(f"unknown loss {cfg.loss!r}")


def single_thread():
    """Run a block with one intra-op thread (tiny models run fastest that way, and other
    processes sharing a small machine do not slow them by an order of magnitude)."""
    return _threads(1)


@contextlib.contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: Device = None):
    """Run a block with torch's global RNG seeded to ``seed`` and restore the caller's state after.

    Needed only for layers that cannot take a generator (``nn.Dropout``, ``F.dropout``).
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _weight_params(model: nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.dim() >= 2]


def parameter_vector(model: nn.Module) -> torch.Tensor:
    """All parameters flattened into one detached vector (a copy)."""
    return torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])


def _grad_norm(params: Sequence[torch.nn.Parameter]) -> float:
    sq = [p.grad.detach().pow(2).sum() for p in params if p.grad is not None]
    return math.sqrt(float(torch.stack(sq).sum())) if sq else 0.0


def train(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    cfg: Optional[TrainConfig] = None,
    *,
    X_val: Optional[torch.Tensor] = None,
    y_val: Optional[torch.Tensor] = None,
    seed: int = 0,
    device: Device = None,
    callback: Optional[Callable[[StepInfo], None]] = None,
    evaluate_every_epoch: bool = True,
    monitor: Union[None, bool, dict] = None,
) -> History:
    """Train ``model`` in place on ``(X, y)`` with recipe ``cfg``; return the :class:`History`.

    The batch loop is written out the way a training script would be, with each buggy
    variant of the recipe at its place, so the experiments measure the real mechanics of
    torch (autograd accumulation, optimizer skipping ``None`` gradients, scheduler state).

    ``monitor``: ``True`` or a dict of options for :func:`recipecheck.runtime.monitor` (e.g.
    ``{"checks": ["RT104"], "read_every": 10}``) runs the training under the runtime monitor
    (``report=None``, no summary): every step's loss goes to ``observe_loss``, each new pass
    to ``next_epoch``, the per-epoch metrics to ``log_train``/``log_val``. The monitor only
    observes (same seed -> same parameters with or without it); the codes of its findings end
    up in ``History.rt_codes`` (sorted, unique) and the findings in ``History.rt_findings``.
    """
    cfg = cfg or TrainConfig()
    if device is not None:
        model.to(device)
        X, y = X.to(device), y.to(device)
        if X_val is not None:
            X_val, y_val = X_val.to(device), y_val.to(device)
    loss_fn = _loss_fn(cfg)
    optimizer = make_optimizer(cfg, model.parameters())
    n = X.shape[0]
    bs = n if cfg.batch_size is None else min(cfg.batch_size, n)
    batches_per_epoch = math.ceil(n / bs)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.accumulation_steps)
    scheduler = cfg.scheduler(optimizer, steps_per_epoch, cfg.epochs) if cfg.scheduler is not None else None
    if cfg.scheduler_interval not in ("batch", "epoch"):
        raise ValueError("scheduler_interval must be 'batch' or 'epoch'")
    if cfg.zero_grad not in ("before_backward", "after_step", "never", "between_backward_and_step"):
        raise ValueError(f"unknown zero_grad placement {cfg.zero_grad!r}")
    hist = History()
    if not monitor:
        _train_loop(model, X, y, cfg, X_val, y_val, seed, callback, evaluate_every_epoch,
                    loss_fn, optimizer, scheduler, bs, batches_per_epoch, hist, None)
        return hist
    from ..monitor import monitor as runtime_monitor

    opts = dict(monitor) if isinstance(monitor, dict) else {}
    opts.setdefault("report", None)
    opts.setdefault("summary", False)
    with runtime_monitor(model, optimizer, scheduler, **opts) as mon:
        _train_loop(model, X, y, cfg, X_val, y_val, seed, callback, evaluate_every_epoch,
                    loss_fn, optimizer, scheduler, bs, batches_per_epoch, hist, mon)
    hist.rt_findings = list(mon.findings)
    hist.rt_codes = sorted({f.code for f in mon.findings})
    return hist


def _train_loop(model, X, y, cfg, X_val, y_val, seed, callback, evaluate_every_epoch,
                loss_fn, optimizer, scheduler, bs, batches_per_epoch, hist, mon) -> None:
    """The batch loop of :func:`train` (``mon``: a runtime monitor to feed, or None)."""
    n = X.shape[0]
    order_gen = make_generator(seed + 1)
    weights = _weight_params(model)
    k = cfg.accumulation_steps
    micro = 0
    with seeded_global_rng(seed, X.device):
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(n, generator=order_gen).to(X.device) if cfg.shuffle else None
            for b in range(batches_per_epoch):
                idx = order[b * bs:(b + 1) * bs] if order is not None else slice(b * bs, (b + 1) * bs)
                xb, yb = X[idx], y[idx]
                if cfg.zero_grad == "before_backward" and micro % k == 0:
                    optimizer.zero_grad(set_to_none=True)
                out = model(xb)
                if cfg.output_transform is not None:
                    out = cfg.output_transform(out)
                loss = loss_fn(out, yb)
                if cfg.l2_penalty:
                    loss = loss + cfg.l2_penalty * sum(w.pow(2).sum() for w in weights)
                if mon is not None:
                    if mon.num_classes is None and out.dim() == 2 and yb.dim() == 1 and not yb.is_floating_point():
                        mon.num_classes = out.shape[1]  # classification logits: chance level for RT101
                    mon.observe_loss(loss.detach(), logits=out.detach(), target=yb)
                backward_loss = loss / k if (k > 1 and cfg.scale_accumulated_loss) else loss
                backward_loss.backward()
                micro += 1
                if micro % k != 0:
                    continue
                if cfg.zero_grad == "between_backward_and_step":
                    optimizer.zero_grad(set_to_none=True)
                hist.grad_norm.append(_grad_norm(list(model.parameters())))
                if cfg.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                before = [w.detach().clone() for w in weights] if cfg.record_update_ratio else None
                hist.lr.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
                if before is not None:
                    num = math.sqrt(sum(float((w.detach() - b0).pow(2).sum()) for w, b0 in zip(weights, before)))
                    den = math.sqrt(sum(float(b0.pow(2).sum()) for b0 in before))
                    hist.update_ratio.append(num / den if den > 0 else float("inf"))
                if cfg.zero_grad == "after_step":
                    optimizer.zero_grad(set_to_none=True)
                if scheduler is not None and cfg.scheduler_interval == "batch":
                    scheduler.step()
                hist.loss.append(float(loss.detach()))
                hist.steps += 1
                if callback is not None:
                    callback(StepInfo(hist.steps, epoch, hist.loss[-1], model, optimizer))
                if cfg.max_steps is not None and hist.steps >= cfg.max_steps:
                    break
            if scheduler is not None and cfg.scheduler_interval == "epoch":
                scheduler.step()
            hist.epoch_lr.append(optimizer.param_groups[0]["lr"])
            if mon is not None and epoch < cfg.epochs - 1:
                mon.next_epoch()  # before the metrics are logged, so epochs come from the API, not log_val
            if evaluate_every_epoch or epoch == cfg.epochs - 1:
                tl, ta = evaluate(model, X, y, cfg)
                hist.train_loss.append(tl)
                hist.train_acc.append(ta)
                if mon is not None:
                    mon.log_train(epoch, loss=tl, acc=ta)
                if X_val is not None:
                    vl, va = evaluate(model, X_val, y_val, cfg)
                    hist.val_loss.append(vl)
                    hist.val_acc.append(va)
                    if mon is not None:
                        mon.log_val(epoch, loss=vl, acc=va)
            if cfg.max_steps is not None and hist.steps >= cfg.max_steps:
                break


def evaluate(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, cfg: Optional[TrainConfig] = None, *, eval_mode: Optional[bool] = None
) -> tuple[float, float]:
    """Loss and accuracy of ``model`` on ``(X, y)`` under ``no_grad``.

    With ``eval_mode`` (default: ``cfg.eval_mode``) the model is switched to ``eval()``;
    otherwise it is evaluated in whatever mode it is in (the RC701 bug). The model's mode is
    restored afterwards. Accuracy is NaN for regression losses.
    """
    cfg = cfg or TrainConfig()
    use_eval = cfg.eval_mode if eval_mode is None else eval_mode
    was_training = model.training
    if use_eval:
        model.eval()
    try:
        with torch.no_grad():
            out = model(X)
            if cfg.output_transform is not None:
                out = cfg.output_transform(out)
            loss = float(_loss_fn(cfg)(out, y))
            if out.dim() == 2 and y.dim() == 1 and not y.is_floating_point():
                acc = float((out.argmax(dim=1) == y).float().mean())
            else:
                acc = float("nan")
    finally:
        model.train(was_training)
    return loss, acc


def hidden_activations(model: nn.Sequential, X: torch.Tensor, layer: int) -> torch.Tensor:
    """Output of ``model[:layer+1]`` on ``X`` in eval mode (no grad): the activations after that layer."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model[: layer + 1](X)
    finally:
        model.train(was_training)
