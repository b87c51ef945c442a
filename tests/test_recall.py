"""Recall patterns of issue 9 (within one file): each bug in the shape real code writes it,
next to its legitimate look-alike. The whole-script versions are the fixtures
`fixtures/scripts/buggy/recall_*.py` (checked line by line by test_fixtures.py); these tests
pin the pattern and the look-alike that must stay quiet."""

import textwrap
from pathlib import Path

import pytest

from recipecheck.engine import lint_source
from recipecheck.rule import all_rules

ALL = [r() for r in all_rules()]
BUGGY = Path(__file__).resolve().parent.parent / "fixtures" / "scripts" / "buggy"


def lines(src: str, code: str) -> list[int]:
    src = textwrap.dedent(src)
    return sorted(f.line for f in lint_source(src, "t.py", ALL).findings if f.code == code)


@pytest.mark.parametrize("name,code", [
    ("recall_rc201_steplr_in_accumulation_gate.py", "RC201"),
    ("recall_rc402_smoke_test_else_branch.py", "RC402"),
    ("recall_rc501_rc504_optional_layers.py", "RC501"),
    ("recall_rc501_rc504_optional_layers.py", "RC504"),
    ("recall_rc405_transform_list_append.py", "RC405"),
    ("recall_rc401_loader_factory.py", "RC401"),
    ("recall_rc701_inference_helper.py", "RC701"),
    ("recall_rc704_val_defaults_to_test.py", "RC704"),
    ("recall_rc406_validation_from_training_data.py", "RC406"),
    ("recall_rc702_periodic_eval_iterations.py", "RC702"),
    ("recall_rc104_validation_loss_with_graph.py", "RC104"),
])
def test_recall_fixture_fires(name, code):
    src = (BUGGY / name).read_text()
    found = [f for f in lint_source(src, name, ALL).findings if f.code == code]
    assert found, f"{code} missed in {name}"
    assert all(f"expect: " in src.splitlines()[f.line - 1] for f in found)


# -- code under if/else


def test_optional_layer_absent_arm_only_is_not_a_layer():
    src = """
        import torch.nn as nn
        import torch.nn.functional as F
        class Net(nn.Module):
            def __init__(self, p):
                super().__init__()
                self.fc = nn.Linear(8, 8)
                self.a = nn.Dropout(p) if p > 0 else nn.Dropout(0.5)
                self.bn = nn.BatchNorm1d(8)
                self.out = nn.Linear(8, 2)
            def forward(self, x):
                x = self.fc(x)
                if self.a is not None:
                    x = self.a(x)
                return self.out(F.relu(self.bn(x)))
        model = Net(0.1)
    """
    # both arms are layers: not an optional layer, the construction stays unresolved
    assert lines(src, "RC501") == []


def test_flag_gated_output_dropout_stays_conditional():
    src = """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)
                self.drop = nn.Dropout(0.2)
            def forward(self, x):
                x = self.fc(x)
                if self.mc_dropout:
                    x = self.drop(x)
                return x
        model = Net()
    """
    assert lines(src, "RC504") == []


def test_onecycle_in_accumulation_gate_is_fine():
    src = """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
        for epoch in range(10):
            for i, (x, y) in enumerate(loader):
                (crit(model(x), y) / k).backward()
                if (i + 1) % k == 0:
                    opt.step()
                    sched.step()
                    opt.zero_grad()
    """
    assert lines(src, "RC201") == [] and lines(src, "RC202") == []


# -- transform lists


def test_transform_list_extend_and_plus_equal():
    src = """
        import torchvision.transforms as T
        from torchvision import datasets
        t = [T.Resize(256)]
        t.extend([T.CenterCrop(224), T.ToTensor()])
        t += [T.ColorJitter(0.4)]
        val_set = datasets.ImageFolder("val", transform=T.Compose(t))
        u = [T.Resize(256)]
        u.append(T.CenterCrop(224))
        test_set = datasets.ImageFolder("test", transform=T.Compose(u))
    """
    assert lines(src, "RC405") == [7]


# -- files with no training loop


def test_loader_factory_lookalikes():
    src = """
        from torch.utils.data import DataLoader, TensorDataset
        import torch
        from torchvision import datasets, transforms
        def get_loaders(bs):
            train_set = datasets.MNIST("d", train=True, transform=transforms.ToTensor())
            train_loader = DataLoader(train_set, batch_size=bs, shuffle=True)
            return train_loader
        def get_eval_loader(bs):
            test_set = datasets.MNIST("d", train=False, transform=transforms.ToTensor())
            return DataLoader(test_set, batch_size=bs)
        def random_loader(bs):
            train_ds = TensorDataset(torch.randn(64, 3), torch.randn(64))
            return DataLoader(train_ds, batch_size=bs)
        def ordered_train_loader(bs):
            ds = datasets.MNIST("d", train=True, transform=transforms.ToTensor())
            return DataLoader(ds, batch_size=bs)
    """
    # only the last: a real training split returned without shuffle
    assert lines(src, "RC401") == [17]


def test_prediction_helper_lookalikes():
    head = """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
                self.bn = nn.BatchNorm1d(2)
            def forward(self, x):
                return self.bn(self.fc(x))
        model = Net()
    """
    # eval() before the call, in the caller
    assert lines(head + """
        @torch.no_grad()
        def predict(m, x):
            return m(x)
        model.eval()
        print(predict(model, torch.randn(2, 4)))
    """, "RC701") == []
    # not a prediction helper: an RL-style act() under no_grad is out of scope here
    assert lines(head + """
        @torch.no_grad()
        def act(x):
            return model(x).argmax(1)
        print(act(torch.randn(2, 4)))
    """, "RC701") == []
    # no mode-dependent layer: nothing to switch
    assert lines("""
        import torch
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(4, 2))
        @torch.inference_mode()
        def predict(x):
            return model(x)
        print(predict(torch.randn(2, 4)))
    """, "RC701") == []


# -- evaluation protocol


def test_val_alias_of_test_without_selection_is_quiet():
    src = """
        def report(model, test_loader, val_loader=None):
            if val_loader is None:
                val_loader = test_loader
            return evaluate(model, val_loader)
    """
    assert lines(src, "RC704") == []


def test_validation_train_true_carved_by_subset_or_sampler_is_quiet():
    src = """
        from torch.utils.data import DataLoader, Subset
        from torchvision import datasets
        val_set = datasets.MNIST("d", train=True, transform=tf)
        val_set = Subset(val_set, range(55000, 60000))
        val_loader = DataLoader(val_set, batch_size=256)
        valid_ds = datasets.MNIST("d", train=True, transform=tf)
        valid_loader = DataLoader(valid_ds, batch_size=256, sampler=valid_sampler)
    """
    assert lines(src, "RC406") == []


def test_next_iter_on_val_loader_is_fine():
    src = """
        import torch
        with torch.no_grad():
            x_val, y_val = next(iter(val_loader))
            x_tr, y_tr = next(iter(train_loader))
    """
    assert lines(src, "RC406") == []


def test_periodic_eval_with_train_restored_in_loop_is_quiet():
    src = """
        import torch
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
                self.drop = nn.Dropout(0.1)
            def forward(self, x):
                return self.fc(self.drop(x))
        model = Net()
        opt = torch.optim.AdamW(model.parameters())
        for it in range(1000):
            loss = crit(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if it % 100 == 0:
                model.eval()
                with torch.no_grad():
                    print(crit(model(xv), yv).item())
                model.train()
    """
    assert lines(src, "RC702") == []


def test_validation_loss_sum_under_no_grad_or_backpropagated_is_quiet():
    src = """
        import torch
        model.eval()
        val_loss = 0
        with torch.no_grad():
            for x, y in val_loader:
                val_loss += criterion(model(x), y)
        for x, y in val_loader:
            total = total + criterion(model(x), y).item()
    """
    assert lines(src, "RC104") == []
