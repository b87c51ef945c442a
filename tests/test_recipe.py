"""`recipecheck recipe`: the values extracted from clean scripts, the LR curves, advice, output."""

import json
import math
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from recipecheck.cli import main
from recipecheck.recipe import _lr_at, build_recipe, fmt

ROOT = Path(__file__).resolve().parent.parent
CLEAN = ROOT / "fixtures" / "scripts" / "clean"


def recipe_of(name):
    path = CLEAN / name
    return build_recipe(path.read_text(), str(path))


def recipe_src(src):
    return build_recipe(textwrap.dedent(src), "train.py")


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- clean fixtures


def test_imagenet_resnet():
    r = recipe_of("real_imagenet_resnet.py")
    (opt,) = r.optimizers
    assert (opt.name, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == ("SGD", 0.1, 0.9, False, 1e-4)
    (s,) = r.schedules
    assert (s.name, s.stepped, s.steps) == ("StepLR", "per epoch", 90)
    assert s.args == {"step_size": 30, "gamma": 0.1}
    assert s.lr_start == 0.1 and s.lr_end == pytest.approx(0.001)
    assert s.description == "StepLR(step_size=30, gamma=0.1) per epoch for 90 epochs: 0.1 -> 0.001"
    assert (r.epochs, r.batch_size, r.iterations) == (90, 256, None)
    assert r.regularization["augmentation"] == ["RandomResizedCrop", "RandomHorizontalFlip"]
    assert r.input_normalization == ["Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])"]
    assert r.evaluation["eval_mode"] and r.evaluation["no_grad"]
    assert r.evaluation["held_out_data"] == ["val_loader"]
    assert "best_acc1" in r.evaluation["model_selection"]
    assert [a.code for a in r.advice] == ["RC604"]


def test_mnist_adadelta_steplr():
    r = recipe_of("real_mnist.py")
    (opt,) = r.optimizers
    assert (opt.name, opt.lr) == ("Adadelta", 1.0)
    (s,) = r.schedules
    assert (s.name, s.stepped, s.steps, s.args["gamma"]) == ("StepLR", "per epoch", 14, 0.7)
    assert s.lr_end == pytest.approx(0.7 ** 13)
    assert (r.epochs, r.batch_size) == (14, 64)
    assert r.regularization["dropout"] == ["Dropout(0.25)", "Dropout(0.5)"]
    assert r.evaluation["held_out_data"] == ["test_loader"]


def test_transformer_finetune_warmup_accumulation_clip():
    r = recipe_of("real_transformer_finetune.py")
    (opt,) = r.optimizers
    assert (opt.name, opt.lr, opt.eps, opt.weight_decay) == ("AdamW", 5e-5, 1e-8, 0.01)
    assert opt.param_groups == 2 and opt.no_decay_group
    (s,) = r.schedules
    assert (s.name, s.stepped) == ("get_linear_schedule_with_warmup", "per optimizer step")
    assert (s.lr_start, s.lr_peak, s.lr_end) == (0.0, 5e-5, 0.0)
    assert r.warmup.startswith("linear warmup over int(args.warmup_ratio * t_total) steps")
    assert (r.epochs, r.batch_size, r.accumulation_steps) == (3, 32, 2)
    assert r.grad_clip == ["clip_grad_norm_(max_norm=1)"]
    assert r.initialization == ["pretrained weights (from_pretrained)"]


def test_gpt_manual_cosine_with_warmup_and_micro_steps():
    r = recipe_of("real_gpt_training.py")
    (opt,) = r.optimizers
    assert (opt.name, opt.lr, opt.betas, opt.weight_decay) == ("AdamW", 6e-4, [0.9, 0.95], 0.1)
    assert opt.group_weight_decays == [0.1, 0.0] and opt.no_decay_group
    assert r.schedules == []
    (manual,) = r.manual_lr
    assert "linear warmup + cosine decay" in manual and "per optimizer step" in manual
    assert manual.endswith(f"{fmt(6e-4 / 201)} -> 0.0006 (peak at step 200) -> 6e-05")
    assert r.warmup is not None
    assert (r.iterations, r.epochs, r.accumulation_steps, r.batch_size) == (5000, None, 8, 12)
    assert r.amp == ["autocast(torch.float16)", "GradScaler (loss scaling)"]
    assert r.grad_clip == ["clip_grad_norm_(max_norm=1)"]
    assert r.evaluation["eval_functions"] == ["estimate_loss()"]


def test_word_language_model_manual_sgd_and_plateau_annealing():
    r = recipe_of("real_word_language_model.py")
    assert r.optimizers == []
    assert "p.data.add_(p.grad, alpha=-lr)" in r.manual_update and "lr starts at 20" in r.manual_update
    assert r.manual_lr == ["manual decay: `lr /= 4.0` when the validation metric stops improving"]
    assert (r.epochs, r.batch_size) == (40, 20)
    assert r.grad_clip == ["clip_grad_norm_(max_norm=0.25)"]
    assert r.regularization["dropout"] == ["Dropout(0.2)", "LSTM(dropout=0.2)"]
    assert r.advice == []


def test_dcgan_two_optimizers_constant_lr():
    r = recipe_of("real_dcgan.py")
    assert [(o.target, o.name, o.lr, o.betas) for o in r.optimizers] == [
        ("optimizerD", "Adam", 2e-4, [0.5, 0.999]), ("optimizerG", "Adam", 2e-4, [0.5, 0.999])]
    assert r.schedules == [] and r.manual_lr == []
    assert (r.epochs, r.batch_size) == (25, 64)
    assert r.initialization[0] == "nn.init.normal_(m.weight.data, 0.0, 0.02)"
    # a GAN recipe keeps a constant Adam LR by design: no annealing advice (RC205 premise)
    assert "RC205" not in [a.code for a in r.advice]


def test_vae_and_other_clean_fixtures():
    r = recipe_of("real_vae.py")
    assert [(o.name, o.lr) for o in r.optimizers] == [("Adam", 1e-3)]
    assert (r.epochs, r.batch_size) == (10, 128)
    r = recipe_of("amp_gradscaler_onecycle.py")
    (s,) = r.schedules
    assert (s.name, s.stepped) == ("OneCycleLR", "per batch")
    assert (s.lr_start, s.lr_peak, s.lr_end) == pytest.approx((0.2 / 25, 0.2, 0.2 / 25 / 1e4))
    r = recipe_of("while_loop_max_steps.py")
    (s,) = r.schedules
    assert (s.stepped, s.steps, r.iterations) == ("per iteration", 300, 300)
    r = recipe_of("train_one_epoch_multisteplr.py")
    (s,) = r.schedules
    assert (s.args["milestones"], s.lr_end) == ([3, 5], pytest.approx(0.001))


# --------------------------------------------------------------------------- schedules

LOOP = """
import torch
from torch.optim import lr_scheduler as lrs
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
sched = {sched}
for epoch in range({epochs}):
    for x, y in train_loader:
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
    sched.step()
"""


@pytest.mark.parametrize("sched, epochs, end", [
    ("lrs.StepLR(opt, 30)", 90, 0.001),
    ("lrs.MultiStepLR(opt, milestones=[30, 60, 80], gamma=0.1)", 90, 1e-4),
    ("lrs.ExponentialLR(opt, gamma=0.95)", 50, 0.1 * 0.95 ** 49),
    ("lrs.CosineAnnealingLR(opt, T_max=100)", 100, 0.1 * (1 + math.cos(math.pi * 99 / 100)) / 2),
    ("lrs.CosineAnnealingLR(opt, T_max=100, eta_min=1e-3)", 50, 1e-3 + (0.1 - 1e-3) * (1 + math.cos(math.pi * 49 / 100)) / 2),
    ("lrs.LinearLR(opt, start_factor=0.1, total_iters=5)", 20, 0.1),
    ("lrs.PolynomialLR(opt, total_iters=10, power=2.0)", 20, 0.0),
])
def test_per_epoch_closed_forms(sched, epochs, end):
    r = recipe_src(LOOP.format(sched=sched, epochs=epochs))
    (s,) = r.schedules
    assert s.stepped == "per epoch" and s.steps == epochs
    assert s.lr_end == pytest.approx(end)


def test_linear_warmup_is_reported():
    r = recipe_src(LOOP.format(sched="lrs.LinearLR(opt, start_factor=0.1, total_iters=5)", epochs=20))
    assert r.warmup == "linear warmup over 5 epochs"
    assert r.schedules[0].lr_start == pytest.approx(0.01)


def test_argparse_defaults_and_variables_resolve():
    r = recipe_src("""
        import argparse
        import torch
        parser = argparse.ArgumentParser()
        parser.add_argument("--epochs", type=int, default=90)
        parser.add_argument("--lr", type=float, default=0.4)
        parser.add_argument("--bs", dest="batch_size", type=int, default=1024)
        args = parser.parse_args()
        step = 30
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=step, gamma=0.1)
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True)
        for epoch in range(1, args.epochs + 1):
            for x, y in loader:
                opt.zero_grad()
                crit(model(x), y).backward()
                opt.step()
            sched.step()
    """)
    assert (r.optimizers[0].lr, r.optimizers[0].nesterov, r.epochs, r.batch_size) == (0.4, True, 90, 1024)
    assert r.schedules[0].description == "StepLR(step_size=30, gamma=0.1) per epoch for 90 epochs: 0.4 -> 0.004"


def test_per_batch_onecycle_and_lambda_warmup():
    r = recipe_src("""
        import torch
        from torch.optim.lr_scheduler import LambdaLR
        warmup_steps = 100
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
        sched = LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup_steps))
        for epoch in range(3):
            for x, y in loader:
                opt.zero_grad()
                crit(model(x), y).backward()
                opt.step()
                sched.step()
    """)
    (s,) = r.schedules
    assert s.stepped == "per batch" and s.lr_start == pytest.approx(3e-6) and s.lr_peak == pytest.approx(3e-4)
    assert r.warmup == "LambdaLR warmup to 0.0003 over 99 steps"


def test_constant_lr_and_no_optimizer():
    r = recipe_src("""
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        for epoch in range(10):
            for x, y in loader:
                opt.zero_grad()
                crit(model(x), y).backward()
                opt.step()
    """)
    assert r.schedules == [] and r.manual_lr == []
    assert (r.optimizers[0].momentum, r.optimizers[0].nesterov) == (0.0, False)
    codes = [a.code for a in r.advice]
    assert "RC205" in codes


@pytest.mark.parametrize("name, kw, steps", [
    ("StepLR", {"step_size": 7, "gamma": 0.5}, 30),
    ("MultiStepLR", {"milestones": [5, 12], "gamma": 0.2}, 20),
    ("ExponentialLR", {"gamma": 0.9}, 15),
    ("CosineAnnealingLR", {"T_max": 20, "eta_min": 0.001}, 20),
    ("LinearLR", {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 4}, 10),
    ("PolynomialLR", {"total_iters": 8, "power": 2.0}, 10),
])
def test_closed_forms_agree_with_torch(name, kw, steps):
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = getattr(torch.optim.lr_scheduler, name)(opt, **kw)
    for t in range(steps):
        assert _lr_at(name, {k: (float(v) if not isinstance(v, list) else [float(x) for x in v])
                             for k, v in kw.items()}, 0.1, t) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


# --------------------------------------------------------------------------- CLI


def test_cli_text_output():
    res = run("recipe", "--no-color", str(CLEAN / "real_imagenet_resnet.py"))
    assert res.exit_code == 0
    out = res.output
    assert "Training recipe" in out and "StepLR(step_size=30, gamma=0.1) per epoch for 90 epochs: 0.1 -> 0.001" in out
    assert "RC604" in out and "Advice" in out
    assert "\x1b[" not in out  # no colours when not on a terminal


def test_cli_color_forced():
    res = run("recipe", "--color", str(CLEAN / "real_mnist.py"))
    assert "\x1b[" in res.output


def test_cli_json_is_stable():
    res = run("recipe", "--format", "json", str(CLEAN / "real_imagenet_resnet.py"))
    data = json.loads(res.output)
    assert set(data) >= {"path", "optimizers", "schedules", "manual_lr", "warmup", "batch_size", "epochs",
                         "iterations", "grad_clip", "accumulation_steps", "amp", "initialization",
                         "input_normalization", "regularization", "evaluation", "advice"}
    assert data["schedules"][0]["lr_end"] == 0.001
    assert data["optimizers"][0]["lr"] == 0.1
    assert data["advice"][0] == {"rank": 1, "code": "RC604", "severity": "info",
                                 "title": "weight decay on bias and norm", "line": 99, "cell": None,
                                 "source": "rule", "message": data["advice"][0]["message"]}
    assert run("recipe", "--format", "json", str(CLEAN / "real_imagenet_resnet.py")).output == res.output


def test_cli_advice_ranked_errors_first(tmp_path):
    p = tmp_path / "train.py"
    p.write_text(textwrap.dedent("""\
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)
        for epoch in range(90):
            for x, y in train_loader:
                crit(model(x), y).backward()
                opt.step()
                sched.step()
    """))
    data = json.loads(run("recipe", "--format", "json", str(p)).output)
    sev = [a["severity"] for a in data["advice"]]
    assert sev == sorted(sev, key=["error", "warning", "info"].index)
    assert {"RC101", "RC201"} <= {a["code"] for a in data["advice"]}
    assert [a["rank"] for a in data["advice"]] == list(range(1, len(sev) + 1))
    assert data["schedules"][0]["stepped"] == "per batch"


def test_cli_notebook_and_bad_input(tmp_path):
    nb = ROOT / "fixtures" / "notebooks" / "steplr_per_batch.ipynb"
    data = json.loads(run("recipe", "--format", "json", str(nb)).output)
    assert data["optimizers"][0]["cell"] == 2 and data["schedules"][0]["stepped"] == "per batch"
    assert data["advice"][0]["code"] == "RC201" and data["advice"][0]["cell"] == 3
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n")
    res = run("recipe", str(bad))
    assert res.exit_code == 1 and "RC900" in res.output and "Traceback" not in res.output
    res = run("recipe", str(tmp_path / "missing.py"))
    assert res.exit_code == 2


def test_transformers_training_arguments():
    r = recipe_src("""
        from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments
        model = AutoModelForSequenceClassification.from_pretrained("distilbert-base-uncased")
        args = TrainingArguments(output_dir="out", learning_rate=2e-5, per_device_train_batch_size=16,
                                 num_train_epochs=3, weight_decay=0.01, warmup_ratio=0.06,
                                 lr_scheduler_type="cosine", fp16=True, eval_strategy="epoch",
                                 load_best_model_at_end=True, metric_for_best_model="accuracy",
                                 label_smoothing_factor=0.1, gradient_accumulation_steps=4)
        trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds)
        trainer.train()
    """)
    (opt,) = r.optimizers
    assert (opt.name, opt.lr, opt.weight_decay) == ("AdamW", 2e-5, 0.01)
    (s,) = r.schedules
    assert (s.name, s.stepped, s.lr_start, s.lr_peak, s.lr_end) == (
        "get_cosine_schedule_with_warmup", "per optimizer step", 0.0, 2e-5, 0.0)
    assert r.warmup == "linear warmup over 6% of the steps"
    assert (r.epochs, r.batch_size, r.accumulation_steps) == (3, 16, 4)
    assert r.amp == ["Trainer fp16=True"] and r.grad_clip == ["Trainer max_grad_norm=1"]
    assert r.regularization["label_smoothing"] == 0.1
    assert r.evaluation["held_out_data"] == ["eval_dataset=val_ds (Trainer)"]
    assert r.evaluation["model_selection"] == 'Trainer load_best_model_at_end=True on "accuracy"'


def test_lightning_module():
    r = recipe_of("lightning_module_onecycle.py")
    (s,) = r.schedules
    assert (s.name, s.stepped) == ("OneCycleLR", "per optimizer step (Lightning)")
    assert r.epochs == 5 and r.grad_clip == ["Lightning gradient_clip_val=1.0"]


def test_sequential_warmup_cosine_mixup_ema():
    r = recipe_of("real_cifar_resnet_mixup_ema.py")
    (opt,) = r.optimizers
    assert (opt.name, opt.lr, opt.nesterov, opt.group_weight_decays) == ("SGD", 0.1, True, [5e-4, 0.0])
    (s,) = r.schedules  # the LinearLR and CosineAnnealingLR parts are described inside it
    assert s.name == "SequentialLR" and s.stepped == "per batch"
    assert (s.lr_start, s.lr_peak, s.lr_end) == pytest.approx((0.001, 0.1, 0.0))
    assert s.description.startswith("SequentialLR: LinearLR(start_factor=0.01")
    assert r.warmup == "linear warmup over WARMUP_EPOCHS * steps_per_epoch steps"
    assert (r.epochs, r.batch_size) == (200, 128)
    reg = r.regularization
    assert reg["label_smoothing"] == 0.1 and reg["mixup_cutmix"] == ["mixup"]
    assert reg["augmentation"] == ["RandomCrop", "RandomHorizontalFlip"] and reg["ema"] == ["ema_model"]
    assert r.amp == ["autocast(torch.float16)", "GradScaler (loss scaling)"]


def test_tabular_plateau_early_stopping():
    r = recipe_of("real_tabular_mlp_early_stopping.py")
    (s,) = r.schedules
    assert (s.name, s.stepped, s.args["factor"], s.args["patience"]) == ("ReduceLROnPlateau", "per epoch", 0.5, 5)
    assert r.input_normalization == ["StandardScaler (sklearn)"]
    assert r.regularization["early_stopping"] == ["patience"]
    assert (r.epochs, r.batch_size) == (300, 256)


def test_noam_lambda_schedule():
    r = recipe_of("real_seq2seq_transformer_noam.py")
    (opt,) = r.optimizers
    assert (opt.name, opt.lr, opt.betas, opt.eps) == ("Adam", 1.0, [0.9, 0.98], 1e-9)
    (s,) = r.schedules
    assert (s.name, s.stepped) == ("LambdaLR", "per batch")
    assert s.lr_peak == pytest.approx(512 ** -0.5 * 4000 ** -0.5)
    assert r.warmup == f"LambdaLR warmup to {fmt(512 ** -0.5 * 4000 ** -0.5)} over 3999 steps"
    assert r.regularization["label_smoothing"] == 0.1


def test_recipe_observations():
    big_batch = recipe_src("""
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, 30)
        loader = torch.utils.data.DataLoader(ds, batch_size=4096, shuffle=True)
        for epoch in range(90):
            for x, y in loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
            sched.step()
    """)
    obs = [a for a in big_batch.advice if a.source == "recipe"]
    assert [a.title for a in obs] == ["LR far from the linear-scaling rule"]
    assert "suggests about 1.6" in obs[0].message and obs[0].code is None
    assert big_batch.advice[-1] is obs[0]  # observations come after the rules' findings
    gan = recipe_of("real_dcgan.py")  # generative models get no augmentation/regularization advice
    assert [a.source for a in gan.advice] == []  # and no RC205: its constant LR is by design


ACCELERATE = """
import torch
from accelerate import Accelerator

accelerator = Accelerator({args})
model = torch.nn.Linear(8, 2)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
loader = torch.utils.data.DataLoader(list(range(10)), batch_size=2, shuffle=True)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
for epoch in range(3):
    for x, y in loader:
        with accelerator.accumulate(model):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
"""


def test_accelerate_precision_and_accumulation():
    r = build_recipe(ACCELERATE.format(args="mixed_precision='bf16', gradient_accumulation_steps=4"), "t.py")
    assert r.amp == ["Accelerate mixed_precision='bf16'"]
    assert (r.accumulation_steps, r.accumulation_text) == (4, "gradient_accumulation_steps=4 (Accelerate)")
    # without the argument the precision comes from `accelerate launch` or its config: never "fp32"
    r = build_recipe(ACCELERATE.format(args=""), "t.py")
    assert len(r.amp) == 1 and r.amp[0].startswith("unknown: Accelerator() without mixed_precision")
