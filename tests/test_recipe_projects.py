"""`recipecheck recipe` on multi-file fixture projects: facts that live in other modules are
found, and what cannot be resolved is said, never shown as "none" or a default."""

from pathlib import Path

import pytest

from recipecheck.recipe import build_recipe, rows

ROOT = Path(__file__).resolve().parent.parent / "fixtures" / "projects"


def recipe_of(rel: str):
    path = ROOT / rel
    return build_recipe(path.read_text(), str(path))


def row(recipe, name: str) -> str:
    return dict(rows(recipe))[name]


def test_nanogpt_optimizer_from_configure_optimizers_in_model_py():
    r = recipe_of("nanogpt_config/train.py")
    [o] = r.optimizers
    assert (o.name, o.lr, o.betas, o.weight_decay) == ("AdamW", 6e-4, [0.9, 0.95], 0.1)
    assert o.module == "model.py" and "model.configure_optimizers(" in o.built_by
    assert o.no_decay_group
    text = row(r, "Optimizer")
    assert text.startswith("built by `model.configure_optimizers(") and "in model.py" in text
    # provenance: the module global may be overridden by the exec'd config file
    lr = o.provenance["lr"]["values"]
    assert {"value": 6e-4, "source": "literal"} in lr
    assert any("configurator.py" in d.get("overridable", "") for d in lr)


def test_nanogpt_schedule_warmup_accumulation_init():
    r = recipe_of("nanogpt_config/train.py")
    sched = row(r, "LR schedule")
    assert "get_lr(it)" in sched and "peak at step 2000" in sched and "-> 6e-05" in sched
    assert "only when `decay_lr`; otherwise constant `learning_rate`" in sched
    assert "2000 steps" in r.warmup
    acc = row(r, "Accumulation")
    assert "40 if `not ddp`" in acc and "gradient_accumulation_steps //= world_size" in acc
    assert r.iterations == 600000 and r.batch_size == 12
    init = row(r, "Initialization")
    assert "only when `init_from.startswith(\"gpt2\")`" in init and "init_from = 'scratch'" in init
    assert r.modules == ["model.py"]


def test_mae_engine_split():
    r = recipe_of("mae_engine/main_pretrain.py")
    [o] = r.optimizers
    assert o.name == "AdamW" and o.betas == [0.9, 0.95] and o.weight_decay == 0.05
    assert o.no_decay_group
    assert "args.blr * eff_batch_size / 256" in o.lr_text and "args.lr is None" in o.lr_text
    assert r.epochs == 400
    sched = row(r, "LR schedule")
    assert "cosine" in sched and "adjust_learning_rate()" in sched and "util/lr_sched.py" in sched
    assert "args.warmup_epochs` = 40" in r.warmup
    assert any("GradScaler" in a and "util/misc.py" in a for a in r.amp)
    assert any("autocast" in a and "engine.py" in a for a in r.amp)
    assert "% accum_iter == 0" in r.accumulation_text and "1" in r.accumulation_text
    # engine.evaluate() sets eval mode under no_grad
    assert r.evaluation["eval_mode"] and r.evaluation["no_grad"]
    # clipping exists in the scaler class but is off unless a clip_grad is passed
    assert r.grad_clip == ["clip_grad_norm_(max_norm=clip_grad) in `GradScalerWrapper` (util/misc.py) "
                           "only when `clip_grad is not None`, False by default"]


def test_trainer_package_driver_resolves_the_trainer_and_config():
    r = recipe_of("trainer_package/charlm/projects/chars/chars.py")
    [o] = r.optimizers
    # the driver's `C.trainer.learning_rate = 5e-4` overrides the trainer default 3e-4
    assert (o.name, o.lr, o.weight_decay) == ("AdamW", 5e-4, 0.1)
    assert o.module.endswith("charlm/model.py")
    assert r.batch_size == 64
    assert r.grad_clip and "max_norm=1" in r.grad_clip[0] and "trainer.py" in r.grad_clip[0]


def test_trainer_module_alone_says_what_is_unresolved():
    r = recipe_of("trainer_package/charlm/charlm/trainer.py")
    assert r.optimizers == []
    opt = row(r, "Optimizer")
    assert opt.startswith("unknown:") and "model.configure_optimizers(config)" in opt
    assert row(r, "LR schedule").startswith("unknown")
    assert row(r, "Warmup").startswith("unknown")
    assert r.batch_size == 64  # config.batch_size from the trainer's default config
    assert "max_norm=1" in r.grad_clip[0]


def test_lightning_module_configure_optimizers():
    r = recipe_of("lightning_module/train.py")
    [o] = r.optimizers
    assert (o.name, o.lr, o.momentum) == ("SGD", 0.05, 0.9)
    assert o.module == "litmodel.py"
    [sf] = r.schedules
    assert sf.name == "StepLR" and "framework" in sf.description


def test_optimizer_wrapper_schedule_in_another_module():
    r = recipe_of("optim_wrapper/train.py")
    assert [o.name for o in r.optimizers] == ["Adam"]
    sched = row(r, "LR schedule")
    assert "_update_learning_rate()" in sched and "optim.py" in sched
    assert "inverse square-root" in sched
    assert r.warmup and "optim.py" in r.warmup


def test_src_layout_batch_loop_in_package():
    r = recipe_of("src_layout/scripts/train.py")
    assert r.epochs == 30 and r.batch_size == 32
    assert [s.name for s in r.schedules] == ["CosineAnnealingLR"]
    assert r.modules == ["../src/imgcls/models.py", "../src/imgcls/training.py"]


@pytest.mark.parametrize("rel", ["mae_engine/util/lr_sched.py", "nanogpt_config/model.py",
                                 "nanogpt_config/configurator.py"])
def test_file_without_training_loop_says_so(rel):
    r = recipe_of(rel)
    assert not r.training_loop
    first = rows(r)[0]
    assert first[0] == "Training loop" and first[1].startswith("none found")
    assert "Mixed precision" not in dict(rows(r))


def test_json_has_provenance_fields():
    r = recipe_of("nanogpt_config/train.py")
    d = r.to_json()
    for key in ("modules", "unresolved", "provenance", "training_loop"):
        assert key in d
    assert d["optimizers"][0]["module"] == "model.py"
    assert d["optimizers"][0]["provenance"]["lr"]["code"] == "learning_rate"
    assert d["provenance"]["accumulation"]


def test_word_language_model_shape_optimizer_only_behind_a_flag(tmp_path):
    # a single script: AdamW only with --use-optimizer, manual SGD otherwise
    src = (
        "import argparse\nimport torch\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--lr', type=float, default=20)\n"
        "parser.add_argument('--use-optimizer', action='store_true')\n"
        "args = parser.parse_args()\n"
        "model = torch.nn.Linear(4, 4)\n"
        "if args.use_optimizer:\n"
        "    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)\n"
        "lr = args.lr\n"
        "for epoch in range(3):\n"
        "    for x, y in [(torch.randn(2, 4), torch.randn(2, 4))]:\n"
        "        model.zero_grad()\n"
        "        loss = ((model(x) - y) ** 2).mean()\n"
        "        loss.backward()\n"
        "        if args.use_optimizer:\n"
        "            optimizer.step()\n"
        "        else:\n"
        "            for p in model.parameters():\n"
        "                p.data.add_(p.grad, alpha=-lr)\n"
    )
    f = tmp_path / "main.py"
    f.write_text(src)
    r = build_recipe(src, str(f))
    text = row(r, "Optimizer")
    assert "only when `args.use_optimizer` (off by default)" in text
    assert "otherwise parameters updated by hand: `p.data.add_(p.grad, alpha=-lr)`" in text


def test_same_function_name_in_two_modules_is_followed(tmp_path):
    """`train()` calling `engine.train()`: a name shared by two modules is not a recursion."""
    (tmp_path / "setup.cfg").write_text("")
    (tmp_path / "engine.py").write_text(
        "def train(model, loader, optimizer, criterion):\n"
        "    for x, y in loader:\n"
        "        optimizer.zero_grad()\n"
        "        criterion(model(x), y).backward()\n"
        "        optimizer.step()\n")
    src = ("import torch\nimport engine\n\n"
           "def train(model, loader):\n"
           "    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)\n"
           "    for epoch in range(12):\n"
           "        engine.train(model, loader, optimizer, torch.nn.CrossEntropyLoss())\n\n"
           "train(torch.nn.Linear(2, 2), torch.utils.data.DataLoader([], batch_size=16))\n")
    f = tmp_path / "main.py"
    f.write_text(src)
    r = build_recipe(src, str(f))
    assert r.epochs == 12 and r.batch_size == 16
    assert [o.lr for o in r.optimizers] == [0.05]
