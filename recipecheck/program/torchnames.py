"""What the qualified names the model meets are: optimizers, schedulers, loaders, losses, ..."""

from __future__ import annotations

OPTIMIZERS = {
    "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
    "LBFGS", "SparseAdam", "ASGD", "Rprop", "Adafactor", "Muon",
    # third-party optimizers that behave like torch.optim ones
    "FusedAdam", "FusedLAMB", "FusedSGD", "Lamb", "LAMB", "Lion", "AdamW8bit", "Adam8bit",
    "PagedAdamW", "PagedAdamW8bit", "Adafactor",
}
ADAPTIVE_OPTIMIZERS = {"Adam", "AdamW", "NAdam", "RAdam", "Adamax", "FusedAdam", "AdamW8bit",
                       "Adam8bit", "PagedAdamW", "PagedAdamW8bit", "Lamb", "LAMB", "FusedLAMB"}
_OPTIMIZER_PREFIXES = ("torch.optim", "apex.optimizers", "bitsandbytes.optim", "timm.optim",
                       "transformers", "lion_pytorch", "torch_optimizer")

TORCH_SCHEDULERS = {
    "StepLR", "MultiStepLR", "ExponentialLR", "ReduceLROnPlateau", "PolynomialLR",
    "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "CyclicLR", "LambdaLR",
    "MultiplicativeLR", "LinearLR", "ConstantLR", "SequentialLR", "ChainedScheduler",
}
# transformers' schedule factories: all are per optimizer step (num_training_steps).
HF_SCHEDULE_FACTORIES = {
    "get_scheduler", "get_linear_schedule_with_warmup", "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup", "get_polynomial_decay_schedule_with_warmup",
    "get_constant_schedule_with_warmup", "get_inverse_sqrt_schedule", "get_constant_schedule",
    "get_wsd_schedule", "get_cosine_with_min_lr_schedule_with_warmup",
}
WARMUP_SCHEDULERS = {"LinearLR", "LambdaLR", "OneCycleLR", "SequentialLR", "ConstantLR",
                     "ChainedScheduler"} | {n for n in HF_SCHEDULE_FACTORIES if "warmup" in n}

GRAD_SCALERS = {"torch.cuda.amp.GradScaler", "torch.amp.GradScaler", "torch.cpu.amp.GradScaler",
                "torch.amp.grad_scaler.GradScaler", "torch.cuda.amp.grad_scaler.GradScaler"}
DATALOADERS = {"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"}
CLIP_FUNCTIONS = {"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_grads_with_norm_"}
CLIP_PREFIXES = ("torch.nn.utils", "torch.nn.utils.clip_grad")
NN_MODULE_BASES = {"torch.nn.Module", "torch.nn.modules.module.Module", "pytorch_lightning.LightningModule",
                   "lightning.LightningModule", "lightning.pytorch.LightningModule",
                   "pl.LightningModule", "lightning.pytorch.core.LightningModule"}
TRANSFORMER_MARKERS = (
    "torch.nn.Transformer", "torch.nn.TransformerEncoder", "torch.nn.TransformerDecoder",
    "torch.nn.TransformerEncoderLayer", "torch.nn.TransformerDecoderLayer",
    "torch.nn.MultiheadAttention", "torch.nn.functional.scaled_dot_product_attention",
    "transformers.", "timm.models.vision_transformer",
)


def last(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


def is_optimizer(qualname: str | None) -> bool:
    return bool(qualname) and last(qualname) in OPTIMIZERS and qualname.startswith(_OPTIMIZER_PREFIXES)


def is_scheduler(qualname: str | None) -> bool:
    if not qualname:
        return False
    name = last(qualname)
    if qualname.startswith("torch.optim") and name in TORCH_SCHEDULERS:
        return True
    return qualname.startswith("transformers") and name in HF_SCHEDULE_FACTORIES


def is_grad_scaler(qualname: str | None) -> bool:
    return qualname in GRAD_SCALERS


def is_dataloader(qualname: str | None) -> bool:
    return qualname in DATALOADERS


def is_clip(qualname: str | None) -> bool:
    return bool(qualname) and last(qualname) in CLIP_FUNCTIONS and qualname.startswith(CLIP_PREFIXES)


def is_loss_class(qualname: str | None) -> bool:
    return bool(qualname) and qualname.startswith("torch.nn.") and last(qualname).endswith("Loss")
