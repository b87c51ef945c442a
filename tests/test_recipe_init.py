"""The recipe's Initialization and Input normalization rows on multi-file code: init inside
project model classes (in whichever module) is found, and a model the linter cannot see into is
said to be unknown or the library's, never shown as "PyTorch defaults"; normalization done by a
project helper (a transform builder in another module) is found there."""

import textwrap

from recipecheck.recipe import build_recipe

MODEL = '''\
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        nn.init.zeros_(self.fc.bias)


class GPT(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.blocks = nn.ModuleList([Block(d) for _ in range(2)])
        self.head = nn.Linear(d, 2)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @classmethod
    def from_pretrained(cls, name):
        return cls()


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)


def helper_never_used():
    nn.init.constant_(nn.Linear(2, 2).weight, 0.0)
'''

LOOP = '''
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
for epoch in range(2):
    for x in [torch.randn(2, 8)]:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
'''


def recipe(tmp_path, train: str, **modules: str):
    (tmp_path / "pyproject.toml").write_text("")
    for name, text in modules.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(train))
    return build_recipe(path.read_text(), str(path)).initialization


def test_init_of_a_project_model_class_and_its_submodules(tmp_path):
    init = recipe(tmp_path, "import torch\nfrom model import GPT\nmodel = GPT()\n" + LOOP, model=MODEL)
    assert "nn.init.normal_(module.weight, mean=0.0, std=0.02) in GPT._init_weights (model.py)" in init
    assert "nn.init.zeros_(self.fc.bias) in Block.__init__ (model.py)" in init
    assert not any("constant_" in line or "PyTorch defaults" in line for line in init)


def test_pretrained_branch_and_the_class_init_of_the_other_branch(tmp_path):
    train = ("import torch\nfrom model import GPT\ninit_from = 'scratch'\n"
             "if init_from == 'scratch':\n    model = GPT()\nelse:\n    model = GPT.from_pretrained(init_from)\n" + LOOP)
    init = recipe(tmp_path, train, model=MODEL)
    assert init[0].startswith("pretrained weights (from_pretrained) only when")
    assert "other branches train from the init below" in init[0]
    assert any("GPT._init_weights" in line for line in init[1:])


def test_project_class_without_init_is_pytorch_defaults(tmp_path):
    init = recipe(tmp_path, "import torch\nfrom model import Plain\nmodel = Plain()\n" + LOOP, model=MODEL)
    assert init == ["PyTorch defaults (Kaiming-uniform for Linear/Conv layers)"]


def test_model_picked_by_name_from_a_project_module(tmp_path):
    train = ("import argparse\nimport torch\nimport model as models\n"
             "parser = argparse.ArgumentParser()\nparser.add_argument('--arch', default='Plain')\n"
             "args = parser.parse_args()\nmodel = models.__dict__[args.arch]()\n" + LOOP)
    init = recipe(tmp_path, train, model=MODEL)
    assert init == ["model: 'Plain' from model.py (the default of `args.arch`), a Plain",
                    "PyTorch defaults (Kaiming-uniform for Linear/Conv layers)"]
    # a factory function picked by name, through a module-level alias (MAE's shape)
    factory = MODEL + "\n\ndef gpt_tiny(**kw):\n    model = GPT(**kw)\n    return model\n\n\ngpt_default = gpt_tiny\n"
    init = recipe(tmp_path, train.replace("'Plain'", "'gpt_default'"), model=factory)
    assert init[0] == "model: 'gpt_default' from model.py (the default of `args.arch`), a GPT"
    assert any("GPT._init_weights (model.py)" in line for line in init[1:])
    # a name the code cannot know: said so
    init = recipe(tmp_path, train.replace("default='Plain'", "required=True"), model=MODEL)
    assert init == ["one of the models of model.py, chosen by `args.arch`; its initialization is not followed"]


def test_library_models_are_the_librarys(tmp_path):
    train = ("import torch\nimport torchvision.models as models\narch = 'resnet18'\n"
             "model = models.__dict__[arch]()\n" + LOOP)
    assert recipe(tmp_path, train) == [
        "set outside the analysed code: one of the models of torchvision.models, chosen by `arch` (default 'resnet18')"]
    train = "import torch\nfrom timm import create_model\nmodel = create_model('vit_small', num_classes=10)\n" + LOOP
    assert recipe(tmp_path, train) == ["set outside the analysed code: the model comes from `create_model(...)`"]


def test_a_file_that_builds_no_model_says_so(tmp_path):
    train = '''\
        import torch


        class Trainer:
            def __init__(self, model):
                self.model = model.to("cpu")
                self.optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)

            def run(self, loader):
                for epoch in range(2):
                    for x in loader:
                        self.optimizer.zero_grad()
                        self.model(x).sum().backward()
                        self.optimizer.step()
        '''
    assert recipe(tmp_path, train) == ["unknown: no model is built in the analysed code (it is passed in)"]


def test_normalization_inside_a_project_transform_builder(tmp_path):
    datasets = """\
        from torchvision import transforms


        def build_transform(is_train):
            t = [transforms.ToTensor()]
            t.append(transforms.Normalize((0.5,), (0.25,)))
            return transforms.Compose(t)
        """
    train = ("import torch\nfrom datasets import build_transform\nfrom model import Plain\n"
             "tf = build_transform(True)\nmodel = Plain()\n" + LOOP)
    (tmp_path / "pyproject.toml").write_text("")
    for name, text in {"datasets": datasets, "model": MODEL}.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    path = tmp_path / "train.py"
    path.write_text(train)
    r = build_recipe(train, str(path))
    assert r.input_normalization == ["Normalize((0.5,), (0.25,)) in `build_transform` (datasets.py)"]


def test_class_alias_and_a_submodule_handed_in(tmp_path):
    model = MODEL + "\n\nModel = GPT  # the old name, kept for callers\n\n\n" + textwrap.dedent('''\
        class Siamese(nn.Module):
            def __init__(self, base_encoder, dim=8):
                super().__init__()
                self.encoder = base_encoder(num_classes=dim)
                self.head = nn.Linear(dim, dim)
        ''')
    init = recipe(tmp_path, "import torch\nfrom model import Model\nmodel = Model()\n" + LOOP, model=model)
    assert any("GPT._init_weights (model.py)" in line for line in init)
    train = ("import torch\nimport torchvision.models as models\nfrom model import Siamese\n"
             "model = Siamese(models.resnet18)\n" + LOOP)
    assert recipe(tmp_path, train, model=model) == [
        "unknown: Siamese builds part of itself with `base_encoder(...)`, passed in by the caller"]


def test_weights_loaded_from_a_checkpoint_under_a_flag(tmp_path):
    train = ("import argparse\nimport torch\nfrom model import GPT\n"
             "parser = argparse.ArgumentParser()\nparser.add_argument('--resume', action='store_true')\n"
             "args = parser.parse_args()\nmodel = GPT()\nif args.resume:\n"
             "    model.load_state_dict(torch.load('ckpt.pt'))\n" + LOOP +
             "\noptimizer.load_state_dict(torch.load('opt.pt'))\n")
    init = recipe(tmp_path, train, model=MODEL)
    assert init[-1] == "weights loaded by `model.load_state_dict(torch.load('ckpt.pt'))` only when `args.resume`, False by default"
    assert not any("optimizer.load_state_dict" in line for line in init)
