"""Hard cases of the initialization (RC301-RC304) and data-pipeline (RC401-RC406) rules,
beyond the examples embedded in the rules: the role of an initialized tensor (weight, bias,
normalization scale, embedding) in every common form, data flow in statement order for
leakage, and the training loader resolved through the program model."""

import textwrap

import libcst as cst
import pytest

from recipecheck.engine import fix_source, lint_source
from recipecheck.program.data import data_model, is_data_name, is_eval_name, is_train_name
from recipecheck.program.init import init_model
from recipecheck.program.model import build_program
from recipecheck.rule import all_rules, rule_by_code

RULES = [r() for r in all_rules()]


def found(src: str, code: str) -> list[int]:
    src = textwrap.dedent(src)
    findings = lint_source(src, "t.py", RULES).findings
    assert not any(f.code == "RC900" for f in findings), "the test snippet does not parse"
    return sorted(f.line for f in findings if f.code == code)


def program(src: str):
    return build_program(cst.parse_module(textwrap.dedent(src)))


# --------------------------------------------------------------------------- init: roles

ROLE_CASES = [
    ("nn.init.zeros_(self.fc1.weight)", "weight"),
    ("self.fc1.weight.data.fill_(0)", "weight"),
    ("self.fc1.bias.data.zero_()", "bias"),
    ("nn.init.constant_(self.bn1.weight, 0)", "norm"),
    ("nn.init.ones_(self.ln.weight)", "norm"),
    ("nn.init.normal_(self.emb.weight, 0, 1)", "embedding"),
    ("self.lstm.bias_ih_l0.data.fill_(1.0)", "bias"),
    ("nn.init.orthogonal_(self.lstm.weight_hh_l0)", "weight"),
]


@pytest.mark.parametrize("stmt,role", ROLE_CASES)
def test_role_of_attribute_targets(stmt, role):
    src = f"""
    import torch.nn as nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.bn1 = nn.BatchNorm1d(8)
            self.ln = nn.LayerNorm(8)
            self.emb = nn.Embedding(10, 8)
            self.lstm = nn.LSTM(8, 8)
            self.fc2 = nn.Linear(8, 2)
            {stmt}
    """
    sites = init_model(program(src)).sites
    assert [s.role for s in sites] == [role]


def test_roles_in_apply_function_isinstance_and_classname():
    src = """
    import torch.nn as nn
    def init_fn(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            m.weight.data.normal_(0.0, 0.02)
        elif classname.find('BatchNorm') != -1:
            m.weight.data.normal_(1.0, 0.02)
            m.bias.data.fill_(0)
    """
    roles = [(s.kind, s.role) for s in init_model(program(src)).sites]
    assert roles == [("xavier", "weight"), ("zeros", "bias"), ("ones", "norm"), ("zeros", "bias"),
                     ("normal", "weight"), ("normal", "norm"), ("zeros", "bias")]


def test_roles_in_named_parameters_loops():
    src = """
    import torch.nn as nn
    for name, p in model.named_parameters():
        if "bias" in name:
            nn.init.zeros_(p)
        elif "norm" in name:
            nn.init.ones_(p)
        else:
            nn.init.kaiming_normal_(p)
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
        else:
            nn.init.zeros_(p)
    """
    roles = [(s.kind, s.role) for s in init_model(program(src)).sites]
    assert roles == [("zeros", "bias"), ("ones", "norm"), ("kaiming", "weight"),
                     ("xavier", "weight"), ("zeros", "vector")]


def test_raw_parameter_shape_decides_weight_or_bias():
    src = """
    import torch
    import torch.nn as nn
    class L(nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(n_out, n_in))
            self.b = nn.Parameter(torch.zeros(n_out))
            self.v = nn.Parameter(torch.zeros(n_out))
            self.scale = nn.Parameter(torch.ones(1, n_out, 1, 1))
            self.cls_token = nn.Parameter(torch.zeros(1, 1, n_out))
    """
    roles = {s.target_text: s.role for s in init_model(program(src)).sites}
    assert roles == {"self.w": "weight", "self.b": "bias", "self.v": "vector", "self.scale": "norm",
                     "self.cls_token": "embedding"}


# --------------------------------------------------------------------------- init: rules

MLP = """
import torch.nn as nn
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 256)
        self.classifier = nn.Linear(256, 10)
        {stmt}
    def forward(self, x):
        return self.classifier(self.fc2(self.fc1(x).relu()).relu())
"""


@pytest.mark.parametrize("stmt,code,fires", [
    ("nn.init.zeros_(self.fc1.weight)", "RC301", True),
    ("nn.init.constant_(self.fc2.weight, 0.0)", "RC301", True),
    ("self.fc1.weight.data.zero_()", "RC301", True),
    ("nn.init.zeros_(self.classifier.weight)", "RC301", False),  # output layer
    ("nn.init.zeros_(self.fc1.bias)", "RC301", False),
    ("nn.init.ones_(self.fc1.weight)", "RC302", True),
    ("self.fc2.weight.data.fill_(0.5)", "RC302", True),
    ("self.fc2.bias.data.fill_(0.5)", "RC302", False),
    ("nn.init.normal_(self.fc1.weight)", "RC303", True),
    ("nn.init.normal_(self.fc1.weight, 0, 1)", "RC303", True),
    ("nn.init.uniform_(self.fc1.weight, -1, 1)", "RC303", True),
    ("self.fc1.weight.data.normal_(0, 0.02)", "RC303", False),
    ("nn.init.uniform_(self.fc1.weight, -0.1, 0.1)", "RC303", False),
    ("nn.init.normal_(self.fc1.weight, std=1 / 28)", "RC303", False),
    ("nn.init.xavier_uniform_(self.fc1.weight)", "RC304", True),
    ("nn.init.kaiming_uniform_(self.fc1.weight, nonlinearity='relu')", "RC304", False),
])
def test_init_rules_on_an_mlp(stmt, code, fires):
    lines = found(MLP.format(stmt=stmt), code)
    assert lines == ([9] if fires else [])


def test_zero_init_of_residual_output_projection_and_single_layer_are_not_flagged():
    src = """
    import torch
    import torch.nn as nn
    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.c_fc = nn.Linear(d, 4 * d)
            self.c_proj = nn.Linear(4 * d, d)
            nn.init.zeros_(self.c_proj.weight)
    """
    assert found(src, "RC301") == []
    logreg = "import torch\nW = torch.zeros(784, 10, requires_grad=True)\nb = torch.zeros(10, requires_grad=True)\n"
    assert found(logreg, "RC301") == []
    single = "import torch.nn as nn\nmodel = nn.Linear(784, 10)\nnn.init.zeros_(model.weight)\n"
    assert found(single, "RC301") == []


def test_whole_model_zero_init_is_flagged():
    src = """
    import torch.nn as nn
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    for p in model.parameters():
        nn.init.constant_(p, 0)
    """
    assert found(src, "RC301") == [5]


def test_placeholder_reinitialized_in_reset_parameters():
    src = """
    import torch
    import torch.nn as nn
    class Dense(nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(n_out, n_in))
            self.other = nn.Parameter(torch.randn(n_out, n_in))
            self.reset_parameters()
        def reset_parameters(self):
            nn.init.kaiming_uniform_(self.weight)
    """
    assert found(src, "RC303") == [8]


def test_rc303_min_scale_option():
    src = "import torch.nn as nn\nclass N(nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
          "        self.a = nn.Linear(4, 4)\n        self.b = nn.Linear(4, 2)\n" \
          "        nn.init.normal_(self.a.weight, 0, 0.02)\n"
    rule = rule_by_code("RC303")
    strict = rule(rule.Options(**{"min-scale": 0.01}))
    assert [f.line for f in lint_source(src, "t.py", [strict]).findings] == [7]
    assert lint_source(src, "t.py", [rule()]).findings == []


def test_rc304_kaiming_in_tanh_net_and_calibrated_variants():
    base = """
    import torch
    import torch.nn as nn
    class TanhNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(10, 50)
            self.fc2 = nn.Linear(50, 1)
            {stmt}
        def forward(self, x):
            return self.fc2(torch.tanh(self.fc1(x)))
    """
    assert found(base.format(stmt="nn.init.kaiming_normal_(self.fc1.weight)"), "RC304") == [9]
    assert found(base.format(stmt="nn.init.kaiming_normal_(self.fc1.weight, nonlinearity='tanh')"),
                 "RC304") == []
    assert found(base.format(stmt="nn.init.xavier_normal_(self.fc1.weight)"), "RC304") == []


# --------------------------------------------------------------------------- data: names


@pytest.mark.parametrize("name,ev,tr,data", [
    ("X_test", True, False, True), ("val_loader", True, False, True), ("testset", True, False, True),
    ("valid_dl", True, False, True), ("train_loader", False, True, True), ("trainloader", False, True, True),
    ("X_train", False, True, True), ("val_loss", True, False, False), ("test_acc", True, False, False),
    ("train_eval_loader", False, False, True), ("latest", False, False, False), ("X_trainval", False, False, True),
])
def test_split_names(name, ev, tr, data):
    assert (is_eval_name(name), is_train_name(name), is_data_name(name)) == (ev, tr, data)


# --------------------------------------------------------------------------- RC401

LOOP = """
for epoch in range(3):
    for x, y in {it}:
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
"""


def test_rc401_follows_loader_through_factory_function_tuple():
    src = """
    from torch.utils.data import DataLoader
    def get_loaders(train_set, val_set):
        train = DataLoader(train_set, batch_size=32)
        val = DataLoader(val_set, batch_size=32)
        return train, val
    train_loader, val_loader = get_loaders(a, b)
    """
    src = textwrap.dedent(src) + LOOP.format(it="train_loader")
    assert found(src, "RC401") == [4]


def test_rc401_only_the_training_loader():
    src = """
    import torch
    from torch.utils.data import DataLoader
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=32)
    test_loader = DataLoader(test_set, batch_size=32, shuffle=False)
    """
    src = textwrap.dedent(src) + LOOP.format(it="enumerate(train_loader)") + """
with torch.no_grad():
    for x, y in val_loader:
        model(x)
"""
    assert found(src, "RC401") == []


def test_rc401_lightning_train_dataloader():
    src = """
    import lightning as L
    from torch.utils.data import DataLoader
    class Model(L.LightningModule):
        def train_dataloader(self):
            return DataLoader(self.train_set, batch_size=64)
        def val_dataloader(self):
            return DataLoader(self.val_set, batch_size=64)
    """
    assert found(src, "RC401") == [6]


def test_rc401_batch_sampler_and_batch_size_none_are_fine():
    src = """
    from torch.utils.data import DataLoader
    a = DataLoader(ds, batch_sampler=BucketSampler(ds, 32))
    b = DataLoader(stream, batch_size=None)
    """
    src = textwrap.dedent(src) + LOOP.format(it="zip(a, b)")
    assert found(src, "RC401") == []


@pytest.mark.parametrize("call,fixed", [
    ("DataLoader(ds, batch_size=8)", "DataLoader(ds, batch_size=8, shuffle=True)"),
    ("DataLoader(ds, batch_size=8, shuffle=False)", "DataLoader(ds, batch_size=8, shuffle=True)"),
    ("DataLoader(ds, 8, False)", None),
    ("DataLoader(ds, **loader_kwargs)", None),
])
def test_rc401_fix(call, fixed):
    src = f"from torch.utils.data import DataLoader\nloader = {call}\n" + LOOP.format(it="loader")
    out, res = fix_source(src, "t.py", [rule_by_code("RC401")()])
    if fixed is None:
        assert out == src
    else:
        assert out == src.replace(call, fixed)
        assert res.findings == []
        again, _ = fix_source(out, "t.py", [rule_by_code("RC401")()])
        assert again == out


# --------------------------------------------------------------------------- RC402 / RC403


@pytest.mark.parametrize("src,lines", [
    # statistics then split, through a derived name
    ("from sklearn.model_selection import train_test_split\nmu = X.mean(0)\nsd = X.std(0)\nXn = (X - mu) / sd\n"
     "X_tr, X_te = train_test_split(Xn, test_size=0.2)\n", [2, 3]),
    # fit inside the split call
    ("from sklearn.model_selection import train_test_split\nfrom sklearn.preprocessing import StandardScaler\n"
     "X_tr, X_te, y_tr, y_te = train_test_split(StandardScaler().fit_transform(X), y)\n", [3]),
    # min-max scaling then index arrays
    ("import numpy as np\nX = (X - np.min(X, axis=0)) / (np.max(X, axis=0) - np.min(X, axis=0))\n"
     "idx = np.random.permutation(len(X))\ntrain_idx, test_idx = idx[:800], idx[800:]\n"
     "X_train = X[train_idx]\nX_test = X[test_idx]\n", [2]),
    # cross-validation after a global scaler
    ("from sklearn.model_selection import KFold\nfrom sklearn.preprocessing import StandardScaler\n"
     "scaler = StandardScaler()\nX = scaler.fit_transform(X)\nkf = KFold(5)\n"
     "for tr, va in kf.split(X):\n    fit(X[tr])\n", [4]),
    # correct order
    ("from sklearn.model_selection import train_test_split\nX_tr, X_te = train_test_split(X)\n"
     "mu = X_tr.mean(0)\nX_tr = X_tr - mu\nX_te = X_te - mu\n", []),
    # split, then the whole array's statistics are only printed
    ("from torch.utils.data import random_split\nprint(dataset.data.float().mean())\n"
     "tr, va = random_split(dataset, [0.9, 0.1])\n", []),
])
def test_rc402_cases(src, lines):
    assert found(src, "RC402") == lines


@pytest.mark.parametrize("src,lines", [
    ("from sklearn.preprocessing import StandardScaler\nsc = StandardScaler().fit(X_test)\n", [2]),
    ("from sklearn.preprocessing import StandardScaler\nscaler = StandardScaler()\nscaler.fit(X_train)\n"
     "X_train = scaler.transform(X_train)\nX_valid = scaler.fit_transform(X_valid)\n", [5]),
    ("import torch\nmean = torch.mean(test_set.data.float(), dim=0)\nnormalize = T.Normalize(mean, 1.0)\n", [2]),
    ("from sklearn.preprocessing import StandardScaler\nscaler = StandardScaler().fit(X_train)\n"
     "X_test = scaler.transform(X_test)\n", []),
    ("import numpy as np\nscores = np.array(test_scores)\nz = (scores - scores.mean()) / scores.std()\n", []),
])
def test_rc403_cases(src, lines):
    assert found(src, "RC403") == lines


def test_stat_sites_know_per_sample_axes():
    p = program("a = X.mean(0)\nb = X.mean(axis=1)\nc = X.std(dim=(0, 2, 3))\nd = X.mean(dim=-1)\ne = X.mean()\n")
    kept = [p.module.code_for_node(s.node) for s in data_model(p).stats]
    assert kept == ["X.mean(0)", "X.std(dim=(0, 2, 3))", "X.mean()"]


# --------------------------------------------------------------------------- RC405 / RC406


def test_rc405_random_split_of_augmented_dataset_and_transform_assignment():
    src = """
    import torchvision.transforms as T
    from torchvision import datasets
    from torch.utils.data import random_split
    aug = T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])
    full = datasets.CIFAR10("data", train=True, transform=aug)
    train_set, val_set = random_split(full, [45000, 5000])
    test_set = datasets.CIFAR10("data", train=False)
    test_set.transform = aug
    """
    assert found(src, "RC405") == [7, 9]


def test_rc405_fine_when_the_subset_gets_its_own_dataset():
    src = """
    import torchvision.transforms as T
    from torchvision import datasets
    from torch.utils.data import Subset
    aug = T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])
    plain = T.Compose([T.ToTensor()])
    train_set = Subset(datasets.CIFAR10("data", train=True, transform=aug), train_idx)
    val_set = Subset(datasets.CIFAR10("data", train=True, transform=plain), val_idx)
    """
    assert found(src, "RC405") == []


def test_rc406_same_dataset_object_and_eval_call():
    src = """
    from torch.utils.data import DataLoader
    ds = make_dataset()
    loader = DataLoader(ds, batch_size=32, shuffle=True)
    val_loader = DataLoader(ds, batch_size=256)
    for epoch in range(3):
        for x, y in loader:
            opt.zero_grad()
            crit(model(x), y).backward()
            opt.step()
        val_acc = validate(model, loader)
    train_acc = validate(model, loader)
    """
    assert found(src, "RC406") == [5, 11]


# --------------------------------------------------------------------------- RC404


def test_rc404_is_conservative():
    base = """
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10){extra})
    train_set = datasets.MNIST("data", train=True, transform=transforms.ToTensor())
    loader = DataLoader(train_set, batch_size=64, shuffle=True)
    for x, y in loader:
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
    """
    assert found(base.format(extra=""), "RC404") == [7]
    assert found(base.format(extra=", nn.LayerNorm(10)"), "RC404") == []
    synthetic = base.format(extra="").replace(
        'datasets.MNIST("data", train=True, transform=transforms.ToTensor())',
        "torch.utils.data.TensorDataset(torch.randn(64, 784), torch.zeros(64))")
    assert found(synthetic, "RC404") == []


def test_fixup_zero_init_of_the_last_conv_of_each_block_is_not_flagged():
    src = """
    import torch.nn as nn
    class FixupBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3)
            self.blocks = nn.Sequential(FixupBlock(16), FixupBlock(16))
            self.fc = nn.Linear(16, 10)
            for m in self.modules():
                if isinstance(m, FixupBlock):
                    nn.init.constant_(m.conv2.weight, 0)
                    nn.init.constant_(m.conv1.weight, 0)
    """
    assert found(src, "RC301") == [17]


def test_hf_init_weights_idiom_is_clean():
    src = """
    import torch.nn as nn
    class PreTrained(nn.Module):
        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
                if module.bias is not None:
                    module.bias.data.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.data.normal_(mean=0.0, std=1.0)
                module.weight.data[module.padding_idx].zero_()
            elif isinstance(module, nn.LayerNorm):
                module.bias.data.zero_()
                module.weight.data.fill_(1.0)
    """
    for code in ("RC301", "RC302", "RC303", "RC304"):
        assert found(src, code) == []


def test_encoders_and_display_scaling_are_not_preprocessing_leaks():
    src = """
    import numpy as np
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelEncoder
    df["sex"] = LabelEncoder().fit_transform(df["sex"])
    X_train, X_test = train_test_split(df.values)
    grid = X_test[:16] / X_test.max()
    """
    assert found(src, "RC402") == []
    assert found(src, "RC403") == []


def test_alias_of_a_layer_weight():
    src = """
    import torch
    import torch.nn as nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(8, 8)
            self.fc2 = nn.Linear(8, 2)
            w = self.fc1.weight
            with torch.no_grad():
                w.zero_()
    """
    assert found(src, "RC301") == [11]


def test_rc405_transform_factory_asked_for_training_variant():
    src = """
    from torchvision import datasets, transforms as T
    def get_tf(split):
        if split == "train":
            return T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])
        return T.ToTensor()
    test_set = datasets.CIFAR10("data", train=False, transform=get_tf("train"))
    val_set = datasets.CIFAR10("data", train=False, transform=get_tf("test"))
    """
    assert found(src, "RC405") == [7]


def test_tensors_made_trainable_after_creation():
    src = """
    import math
    import torch
    w1 = torch.randn(784, 100)
    w1.requires_grad_()
    w2 = torch.randn(100, 10) / math.sqrt(100)
    w2.requires_grad_()
    b = torch.zeros(10)
    b.requires_grad_()
    """
    assert found(src, "RC303") == [4]
    assert found(src, "RC301") == []
