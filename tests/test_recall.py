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
    # round 3: each stands for public reports (the fixture is our own code in their shape)
    ("recall_rc506_local_softmax_module.py", "RC506"),  # speedinghzl/Pytorch-Deeplab#2
    ("recall_rc401_sampler_none_single_process.py", "RC401"),  # ultralytics/yolov5#5622, #2582
    ("recall_rc203_phase_loop_guard.py", "RC203"),  # pytorch/tutorials#640
    ("recall_rc104_summed_loss_terms.py", "RC104"),  # samuelyu2002/ImVisible#2
    ("recall_rc704_unpacked_vali_tuple.py", "RC704"),  # thuml/Anomaly-Transformer#50
    ("recall_rc105_counter_gate.py", "RC105"),  # hirofumi0810/neural_sp#168
    ("recall_rc402_scaler_helpers.py", "RC402"),  # wengwenchao123/DDGCRN#4, LeiBAI/AGCRN#15
    ("recall_rc507_dropout_module_built_in_forward.py", "RC507"),  # yangze0930/NTS-Net#14
    ("recall_rc301_sequential_index_zero.py", "RC301"),  # yz93/LAVT-RIS#25
    # gwinndr/MusicTransformer-Pytorch#10, SamitHuang/EV_GCN#7
    ("recall_rc704_eval_named_test_metric.py", "RC704"),
    ("recall_rc402_pandas_column_loop.py", "RC402"),  # udacity/deep-learning#143
    ("recall_rc401_loader_kwargs_dict.py", "RC401"),  # Deci-AI/super-gradients#416
    ("recall_rc202_classmethod_trainer.py", "RC202"),  # espnet/espnet#3319
    ("recall_rc104_dict_of_totals.py", "RC104"),  # MultimediaTechLab/YOLO#83 (dict of totals)
    ("recall_rc108_microbatch_helper.py", "RC108"),  # pytorch/torchtitan#3575
    # the leak of hkuedl/Lightweight-Federated-NILM#2 in the common dataset-statistics snippet
    ("recall_rc402_loader_loop_stats.py", "RC402"),
    # the misplaced reset of pytorch/pytorch#47175 (zero_grad not once per iteration)
    ("recall_rc101_reset_under_log_branch.py", "RC101"),
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


# -- round 3 (public reports named at each test)


def test_local_log_softmax_module_before_cross_entropy():
    # speedinghzl/Pytorch-Deeplab#2: `m = nn.LogSoftmax(dim=1); pred = m(pred)` before a CE loss
    src = """
        import torch.nn as nn
        import torch.nn.functional as F
        def loss_calc(pred, label):
            m = nn.LogSoftmax(dim=1)
            pred = m(pred)
            return F.cross_entropy(pred, label)
        def inline(z, y):
            return F.cross_entropy(nn.Softmax(dim=1)(z), y)
    """
    assert lines(src, "RC506") == [6, 9]


def test_local_softmax_module_with_nll_or_for_reporting_is_quiet():
    src = """
        import torch.nn as nn
        import torch.nn.functional as F
        def loss_calc(pred, label):
            m = nn.LogSoftmax(dim=1)
            return F.nll_loss(m(pred), label)
        def report(z, y):
            sm = nn.Softmax(dim=1)
            probs = sm(z)
            act = nn.ReLU()
            return F.cross_entropy(act(z), y), probs
    """
    assert lines(src, "RC506") == []


def test_sampler_none_in_one_branch_without_shuffle():
    # ultralytics/yolov5#5622, #2582: sampler = DistributedSampler(...) if DDP else None, no shuffle
    src = """
        from torch.utils.data import DataLoader, Dataset, DistributedSampler
        class DS(Dataset):
            def __len__(self): return 10
            def __getitem__(self, i): return i
        def main(distributed):
            ds = DS()
            sampler = DistributedSampler(ds) if distributed else None
            loader = DataLoader(ds, batch_size=4, sampler=sampler)
            for epoch in range(3):
                for x in loader:
                    opt.zero_grad(); model(x).sum().backward(); opt.step()
    """
    assert lines(src, "RC401") == [9]
    msg = [f.message for f in lint_source(textwrap.dedent(src), "t.py", ALL).findings if f.code == "RC401"]
    assert "`not distributed`" in msg[0] or "distributed" in msg[0]


def test_sampler_none_with_shuffle_fallback_or_always_set_is_quiet():
    src = """
        from torch.utils.data import DataLoader, Dataset, DistributedSampler
        class DS(Dataset):
            def __len__(self): return 10
            def __getitem__(self, i): return i
        def main(distributed):
            ds = DS()
            sampler = DistributedSampler(ds) if distributed else None
            a = DataLoader(ds, batch_size=4, sampler=sampler, shuffle=(sampler is None))
            s2 = None
            if distributed:
                s2 = DistributedSampler(ds)
            b = DataLoader(ds, batch_size=4, sampler=s2, shuffle=not distributed)
            s3 = DistributedSampler(ds, shuffle=True)
            c = DataLoader(ds, batch_size=4, sampler=s3)
            for epoch in range(3):
                for x in a:
                    opt.zero_grad(); model(x).sum().backward(); opt.step()
                for x in b:
                    opt.zero_grad(); model(x).sum().backward(); opt.step()
                for x in c:
                    opt.zero_grad(); model(x).sum().backward(); opt.step()
    """
    assert lines(src, "RC401") == []


def test_scheduler_first_under_the_optimizers_own_phase_guard():
    # pytorch/tutorials#640: `if phase == 'train': scheduler.step()` before the phase's batches
    src = """
        for epoch in range(25):
            for phase in ["train", "val"]:
                if phase == "train":
                    scheduler.step()
                    model.train()
                for x, y in loaders[phase]:
                    optimizer.zero_grad()
                    loss = crit(model(x), y)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
    """
    assert lines(src, "RC203") == [5]


def test_scheduler_under_a_guard_the_optimizer_does_not_share_is_quiet():
    src = """
        for epoch in range(25):
            for phase in ["train", "val"]:
                if epoch > 0:
                    scheduler.step()
                for x, y in loaders[phase]:
                    optimizer.zero_grad()
                    loss = crit(model(x), y)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                if phase == "train":
                    other.step()
    """
    assert lines(src, "RC203") == []


def test_running_totals_of_the_summed_loss_terms():
    # samuelyu2002/ImVisible#2: `loss = MSE + cross_entropy`, then `running_loss_MSE += MSE`
    src = """
        import torch.nn as nn
        mse = nn.MSELoss()
        ce = nn.CrossEntropyLoss()
        for epoch in range(10):
            tot_mse = tot_ce = 0.0
            for x, p, y in loader:
                optimizer.zero_grad()
                out = model(x)
                MSE = mse(out[:, :4], p)
                cross_entropy = ce(out[:, 4:], y)
                loss = MSE + cross_entropy
                loss.backward()
                optimizer.step()
                tot_mse += MSE
                tot_ce += cross_entropy.item()
    """
    assert lines(src, "RC104") == [15]


def test_total_of_a_term_that_is_back_propagated_is_quiet():
    src = """
        import torch.nn as nn
        ce = nn.CrossEntropyLoss()
        for x, y in loader:
            optimizer.zero_grad()
            out = model(x)
            main = ce(out, y)
            aux_total = 0.0
            for head in heads:
                aux = ce(head(out), y)
                aux_total += aux
            loss = main + 0.3 * aux_total
            loss.backward()
            optimizer.step()
            seen += x.size(0)
    """
    assert lines(src, "RC104") == []


def test_early_stopping_on_an_unpacked_test_metric():
    # thuml/Anomaly-Transformer#50: `l1, l2 = self.vali(self.test_loader); early_stopping(l1, ...)`
    src = """
        class Solver:
            def train(self):
                for epoch in range(self.epochs):
                    self.fit_epoch()
                    vali_loss1, vali_loss2 = self.vali(self.test_loader)
                    early_stopping(vali_loss1, self.model, path)
                    if early_stopping.early_stop:
                        break
    """
    assert lines(src, "RC704") == [7]


def test_early_stopping_on_an_unpacked_validation_metric_is_quiet():
    src = """
        class Solver:
            def train(self):
                for epoch in range(self.epochs):
                    self.fit_epoch()
                    vali_loss1, vali_loss2 = self.vali(self.vali_loader)
                    test_loss1, test_loss2 = self.vali(self.test_loader)
                    early_stopping(vali_loss1, self.model, path)
                    if early_stopping.early_stop:
                        break
    """
    assert lines(src, "RC704") == []


def test_counter_gated_accumulation_without_division():
    # hirofumi0810/neural_sp#168: `n += 1; if n >= accum: step; n = 0`, loss not divided
    src = """
        n_accum = 0
        for x, y in loader:
            loss = crit(model(x), y)
            loss.backward()
            n_accum += 1
            if n_accum >= accum_steps:
                optimizer.step()
                optimizer.zero_grad()
                n_accum = 0
    """
    assert lines(src, "RC105") == [5]


def test_counter_never_reset_is_not_accumulation():
    src = """
        step = 0
        for x, y in loader:
            optimizer.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            step += 1
            if step >= frozen_steps:
                optimizer.step()
    """
    assert lines(src, "RC105") == []


def test_stats_in_one_helper_and_split_in_another():
    # wengwenchao123/DDGCRN#4, LeiBAI/AGCRN#15: normalize_dataset(data) then split_data_by_ratio(data)
    src = """
        import numpy as np
        def normalize(data):
            mean, std = data.mean(), data.std()
            return (data - mean) / std
        def split(data, ratio):
            n = data.shape[0]
            test_data = data[-int(n * ratio):]
            train_data = data[:-int(n * ratio)]
            return train_data, test_data
        def load(path):
            data = np.load(path)
            data = normalize(data)
            return split(data, 0.2)
    """
    assert lines(src, "RC402") == [13]


def test_split_helper_before_the_normalizing_helper_is_quiet():
    src = """
        import numpy as np
        def normalize(data):
            mean, std = data.mean(), data.std()
            return (data - mean) / std
        def split(data, ratio):
            n = data.shape[0]
            test_data = data[-int(n * ratio):]
            train_data = data[:-int(n * ratio)]
            return train_data, test_data
        def load(path):
            data = np.load(path)
            train, test = split(data, 0.2)
            train = normalize(train)
            other = normalize(np.load(path + ".extra"))
            return train, test, other
    """
    assert lines(src, "RC402") == []


def test_dropout_module_built_and_applied_in_forward():
    # yangze0930/NTS-Net#14: `x = nn.Dropout(p=0.5)(x)` in forward ignores net.eval()
    src = """
        import torch.nn as nn
        class Net(nn.Module):
            def forward(self, x):
                x = nn.Dropout(p=0.5)(x)
                drop = nn.Dropout(0.3)
                return drop(x)
    """
    assert lines(src, "RC507") == [5, 6]


def test_dropout_module_registered_gated_or_zero_is_quiet():
    src = """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.drop = nn.Dropout(0.5)
                self.head = self._head()
            def _head(self):
                return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2))
            def forward(self, x):
                x = self.drop(x)
                if self.training:
                    x = nn.Dropout(0.1)(x)
                return nn.Dropout(0.0)(self.head(x))
        def corrupt(x):
            return nn.Dropout(0.1)(x)
    """
    assert lines(src, "RC507") == []


def test_zero_init_of_a_sequential_layer_picked_by_index():
    # yz93/LAVT-RIS#25: `nn.init.zeros_(self.res_gate[0].weight)` on a hidden Linear of the gate
    src = """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.mlp = nn.Sequential(nn.Linear(d, d, bias=False), nn.ReLU(), nn.Linear(d, d))
                nn.init.zeros_(self.mlp[0].weight)
        class Block2(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.mlp = nn.Sequential(nn.Conv2d(d, d, 1), nn.ReLU(), nn.Conv2d(d, d, 1))
                nn.init.constant_(self.mlp[0].weight, 0.0)
    """
    assert lines(src, "RC301") == [7, 12]


def test_zero_init_of_the_last_indexed_layer_or_a_bias_or_norm_is_quiet():
    src = """
        import torch.nn as nn
        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.mlp = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, d), nn.Tanh())
                nn.init.zeros_(self.mlp[3].weight)
                nn.init.zeros_(self.mlp[-2].weight)
                nn.init.zeros_(self.mlp[0].bias)
                nn.init.zeros_(self.mlp[1].weight)
                nn.init.zeros_(self.other[0].weight)
            def forward(self, x):
                return x + self.mlp(x)
    """
    assert lines(src, "RC301") == []


def test_eval_named_metric_computed_on_the_test_loader():
    # gwinndr/MusicTransformer-Pytorch#10: `eval_loss, eval_acc = eval_model(model, test_loader)`
    src = """
        def main(model, train_loader, test_loader, epochs):
            best_eval_acc = 0.0
            for epoch in range(epochs):
                for x, y in train_loader:
                    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
                eval_loss, eval_acc = eval_model(model, test_loader)
                if eval_acc > best_eval_acc:
                    best_eval_acc = eval_acc
                    torch.save(model.state_dict(), "best.pt")
    """
    assert lines(src, "RC704") == [9]


def test_eval_named_metric_on_the_validation_loader_is_quiet():
    src = """
        def main(model, train_loader, val_loader, test_loader, epochs):
            best_eval_acc = 0.0
            for epoch in range(epochs):
                for x, y in train_loader:
                    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
                eval_loss, eval_acc = eval_model(model, val_loader)
                test_loss, test_acc = eval_model(model, test_loader)
                if eval_acc > best_eval_acc:
                    best_eval_acc = eval_acc
                    torch.save(model.state_dict(), "best.pt")
    """
    assert lines(src, "RC704") == []


def test_full_batch_loop_keeps_the_best_test_accuracy_under_an_and():
    # SamitHuang/EV_GCN#7: `if acc_test > acc and epoch > 9: acc = acc_test; torch.save(...)`
    src = """
        import torch
        acc = 0
        for epoch in range(200):
            optimizer.zero_grad()
            crit(model(x)[train_idx], y[train_idx]).backward()
            optimizer.step()
            acc_test = (model(x)[test_idx].argmax(1) == y[test_idx]).float().mean()
            if acc_test > acc and epoch > 9:
                acc = acc_test
                torch.save(model.state_dict(), "best.pt")
            acc_val = (model(x)[val_idx].argmax(1) == y[val_idx]).float().mean()
    """
    assert lines(src, "RC704") == [9]


def test_column_loop_standardized_in_place_before_the_holdout():
    # udacity/deep-learning#143: `for each in quant_features: ... data.loc[:, each] = (data[each]
    # - mean) / std`, then `test_data = data[-21 * 24:]`
    src = """
        import pandas as pd
        data = pd.read_csv("hour.csv")
        quant_features = ["cnt", "temp"]
        for each in quant_features:
            mean, std = data[each].mean(), data[each].std()
            data.loc[:, each] = (data[each] - mean) / std
        for col in data.columns:
            data[col] = (data[col] - data[col].min()) / (data[col].max() - data[col].min())
        test_data = data[-500:]
        train_data = data[:-500]
    """
    assert sorted(set(lines(src, "RC402"))) == [6, 9]


def test_column_selection_by_a_list_name_is_not_a_split():
    src = """
        import pandas as pd
        data = pd.read_csv("hour.csv")
        target_fields = ["cnt", "casual"]
        mean, std = data["cnt"].mean(), data["cnt"].std()
        data.loc[:, "cnt"] = (data["cnt"] - mean) / std
        train_targets = data[target_fields]
        for i in range(len(data)):
            row = data[i]
            x = (row - row.mean()) / row.std()
    """
    assert lines(src, "RC402") == []


def test_loader_settings_dict_without_shuffle():
    # Deci-AI/super-gradients#416: `DataLoader(ds, **dataloader_params)`, no shuffle in the dict
    src = """
        from torch.utils.data import DataLoader
        from torchvision import datasets
        params = {"batch_size": 196, "num_workers": 4}
        kw = dict(num_workers=2, pin_memory=True)
        ds = datasets.ImageFolder("train")
        a = DataLoader(ds, **params)
        b = DataLoader(ds, batch_size=32, **kw)
        for epoch in range(10):
            for x, y in a:
                opt.zero_grad(); crit(model(x), y).backward(); opt.step()
            for x, y in b:
                opt.zero_grad(); crit(model(x), y).backward(); opt.step()
    """
    assert lines(src, "RC401") == [7, 8]


def test_loader_settings_dict_with_shuffle_or_updated_is_quiet():
    src = """
        from torch.utils.data import DataLoader
        from torchvision import datasets
        def main(args, use_cuda):
            train_kwargs = {"batch_size": args.batch_size}
            if use_cuda:
                train_kwargs.update({"num_workers": 1, "shuffle": True})
            kw = {"batch_size": 64, "shuffle": True}
            opts = {"batch_size": 64}
            opts["shuffle"] = True
            ds = datasets.MNIST("data", train=True)
            a = DataLoader(ds, **train_kwargs)
            b = DataLoader(ds, **kw)
            c = DataLoader(ds, **opts)
            d = DataLoader(ds, **args.loader_kwargs)
            for epoch in range(10):
                for x, y in a:
                    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
                for x, y in b:
                    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
                for x, y in c:
                    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
                for x, y in d:
                    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
    """
    assert lines(src, "RC401") == []


def test_classmethods_called_through_the_class_and_cls_are_followed():
    # espnet/espnet#3319: `Trainer.run(...)` steps a OneCycleLR per epoch; the batch loop is in
    # `cls.train_one_epoch(...)`
    src = """
        import torch
        class Trainer:
            @classmethod
            def run(cls, optimizer, scheduler, loader, epochs):
                for epoch in range(epochs):
                    cls.train_one_epoch(optimizer, loader)
                    scheduler.step()
            @classmethod
            def train_one_epoch(cls, optimizer, loader):
                for x, y in loader:
                    optimizer.zero_grad(); crit(model(x), y).backward(); optimizer.step()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=10000)
        Trainer.run(opt, sched, loader, 50)
    """
    assert lines(src, "RC202") == [8]


def test_instance_method_called_through_the_class_is_not_bound():
    # `Trainer.run(obj, ...)` passes the instance first: binding it like a classmethod would
    # shift every argument, so it is not followed
    src = """
        import torch
        class Trainer:
            def run(self, optimizer, scheduler, loader, epochs):
                for epoch in range(epochs):
                    for x, y in loader:
                        optimizer.zero_grad(); crit(model(x), y).backward(); optimizer.step()
                    scheduler.step()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.StepLR(opt, 30)
        Trainer.run(trainer, opt, sched, loader, 50)
    """
    assert lines(src, "RC202") == [] and lines(src, "RC201") == []


def test_eval_helper_of_another_module_is_reported_at_the_call():
    # the layout of nshaud/DeepHyperX#51 split across files: the evaluation helper lives in a
    # neighbour module and forgets eval(); the whole project is fixtures/projects/recall_eval_helper
    root = BUGGY.parent.parent / "projects" / "recall_eval_helper"
    train = root / "train.py"
    found = [f for f in lint_source(train.read_bytes(), str(train), ALL).findings if f.code == "RC701"]
    assert [f.line for f in found] == [28]
    assert "evaluate()" in found[0].message
    utils = root / "utils.py"
    assert [f for f in lint_source(utils.read_bytes(), str(utils), ALL).findings] == []


def test_unshuffled_loader_from_another_modules_factory_is_reported_at_the_call():
    # the layout of joaoamcarvalho/mpd-public#6 split across files: the factory lives in a
    # neighbour module, the datasets and the training loop here (fixtures/projects/recall_loader_factory)
    root = BUGGY.parent.parent / "projects" / "recall_loader_factory"
    train = root / "train.py"
    found = [f for f in lint_source(train.read_bytes(), str(train), ALL).findings if f.code == "RC401"]
    assert [f.line for f in found] == [13]
    data = root / "data.py"
    assert [f for f in lint_source(data.read_bytes(), str(data), ALL).findings] == []


def test_eval_mode_left_by_another_modules_helpers_is_reported_at_the_call():
    # asyml/texar-pytorch#310 and pytorch/tutorials#1624 in a split layout: evaluate() in the engine
    # module sets eval(), train_one_epoch() never sets train() (fixtures/projects/recall_engine_modes)
    root = BUGGY.parent.parent / "projects" / "recall_engine_modes"
    train = root / "train.py"
    found = [f for f in lint_source(train.read_bytes(), str(train), ALL).findings if f.code == "RC702"]
    assert [f.line for f in found] == [24]
    engine = root / "engine.py"
    assert [f for f in lint_source(engine.read_bytes(), str(engine), ALL).findings] == []


def test_softmax_model_handed_to_another_modules_training_helper_with_cross_entropy():
    # jindongwang/Deep-learning-activity-recognition#10 in a split layout: the model (models.py)
    # ends in softmax, the engine applies the CrossEntropyLoss the script passes
    # (fixtures/projects/recall_engine_softmax); each call is judged by its own arguments
    root = BUGGY.parent.parent / "projects" / "recall_engine_softmax"
    train = root / "train.py"
    found = [f for f in lint_source(train.read_bytes(), str(train), ALL).findings if f.code == "RC506"]
    assert [f.line for f in found] == [29]
    assert "prob_model" in found[0].message
    for other in ("engine.py", "models.py"):
        path = root / other
        assert [f for f in lint_source(path.read_bytes(), str(path), ALL).findings] == []


def test_test_loader_passed_as_the_validation_data_of_a_selecting_helper():
    # xuanmay2701/shapeformer#2, DearCaat/RRT-MIL#22: the test set is handed to the training
    # helper as its validation data, which picks the checkpoint on it
    src = """
        import torch
        def fit(model, train_loader, val_loader, epochs):
            best_acc = 0.0
            for epoch in range(epochs):
                for x, y in train_loader:
                    opt.zero_grad(); crit(model(x), y).backward(); opt.step()
                acc = evaluate(model, val_loader)
                if acc > best_acc:
                    best_acc = acc
                    torch.save(model.state_dict(), "best.pt")
        def evaluate(model, val_loader):
            return sum((model(x).argmax(1) == y).sum().item() for x, y in val_loader)
        fit(model, train_loader, test_loader, 10)
        fit(model, train_loader, val_loader, 10)
        print(evaluate(model, test_loader))
    """
    assert lines(src, "RC704") == [14]


def test_test_loader_passed_to_another_modules_fit_is_reported_at_the_call():
    root = BUGGY.parent.parent / "projects" / "recall_fit_test_as_val"
    train = root / "train.py"
    found = [f for f in lint_source(train.read_bytes(), str(train), ALL).findings if f.code == "RC704"]
    assert [f.line for f in found] == [19]


def test_dict_of_running_totals_adding_the_loss_tensor():
    # MultimediaTechLab/YOLO#83: `total_loss[name] += loss_val * batch_size` with tensor values
    src = """
        from collections import defaultdict
        totals = defaultdict(float)
        for x, y in loader:
            optimizer.zero_grad()
            loss = crit(model(x), y)
            loss.backward()
            optimizer.step()
            totals["loss"] += loss * x.size(0)
            totals["n"] += x.size(0)
            totals["item"] += loss.item()
    """
    assert lines(src, "RC104") == [9]


def test_dict_of_terms_that_is_back_propagated_is_quiet():
    src = """
        for x, y in loader:
            optimizer.zero_grad()
            parts = {"a": 0.0}
            parts["a"] += crit(model(x), y)
            loss = sum(parts.values())
            loss.backward()
            optimizer.step()
    """
    assert lines(src, "RC104") == []


def test_zero_grad_per_micro_batch_of_an_inner_loop_over_microbatches():
    # pytorch/torchtitan#3575, bytetriper/RAE#67: the inner loop walks the micro-batches
    src = """
        for step in range(steps):
            for mb in batch.split(micro_bs):
                optimizer.zero_grad()
                (crit(model(mb), target) / n_micro).backward()
            optimizer.step()
    """
    assert lines(src, "RC108") == [4]


def test_inner_loop_over_other_things_is_not_accumulation():
    # a loop over the loader with one step after it is not read as micro-batches
    src = """
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                crit(model(x), y).backward()
            optimizer.step()
        for step in range(steps):
            for mb in batch.split(micro_bs):
                (crit(model(mb), target) / n_micro).backward()
            optimizer.step()
            optimizer.zero_grad()
    """
    assert lines(src, "RC108") == []


def test_unscaled_loss_over_named_micro_batches():
    src = """
        for step in range(steps):
            for mb in batch.split(micro_bs):
                loss = crit(model(mb), target)
                loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        for step in range(steps):
            for mb in batch.split(micro_bs):
                scaled = crit(model(mb), target) / n_micro
                scaled.backward()
            optimizer.step()
            optimizer.zero_grad()
    """
    assert lines(src, "RC105") == [5]


def test_statistics_accumulated_over_a_loader_of_the_whole_dataset():
    src = """
        import torch
        from torch.utils.data import DataLoader, random_split
        full = make_dataset()
        loader = DataLoader(full, batch_size=256)
        mean = torch.zeros(3)
        for x, _ in loader:
            mean += x.mean(dim=(0, 2, 3))
        mean /= len(loader)
        normalize = T.Normalize(mean.tolist(), [1.0, 1.0, 1.0])
        train_set, val_set = random_split(full, [0.8, 0.2])
    """
    assert lines(src, "RC402") == [8]


def test_per_batch_statistics_in_the_training_loop_are_quiet():
    src = """
        import torch
        from torch.utils.data import DataLoader, random_split
        full = make_dataset()
        train_set, val_set = random_split(full, [0.8, 0.2])
        loader = DataLoader(train_set, batch_size=64, shuffle=True)
        for x, y in loader:
            x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)
            opt.zero_grad(); crit(model(x), y).backward(); opt.step()
    """
    assert lines(src, "RC402") == []


def test_validation_loader_from_another_modules_factory_over_the_training_data():
    # KrishnaDN/x-vector-pytorch#8, HuCaoFighting/Swin-Unet#135 with the loaders built in a
    # neighbour module (fixtures/projects/recall_val_from_factory)
    root = BUGGY.parent.parent / "projects" / "recall_val_from_factory"
    train = root / "train.py"
    found = [f for f in lint_source(train.read_bytes(), str(train), ALL).findings if f.code == "RC406"]
    assert [f.line for f in found] == [12]
    data = root / "data.py"
    assert [f for f in lint_source(data.read_bytes(), str(data), ALL).findings] == []


def test_reset_only_under_a_periodic_branch_while_stepping_every_iteration():
    src = """
        for i, (x, y) in enumerate(loader):
            loss = crit(model(x), y)
            loss.backward()
            optimizer.step()
            if i % 100 == 0:
                print(loss.item())
                optimizer.zero_grad()
    """
    assert lines(src, "RC101") == [5]


def test_reset_under_a_non_periodic_guard_or_with_a_gated_step_is_quiet():
    src = """
        for i, (x, y) in enumerate(loader):
            loss = crit(model(x), y)
            loss.backward()
            optimizer.step()
            for prm in model.parameters():
                if prm.grad is not None:
                    prm.grad = None
        for i, (x, y) in enumerate(loader):
            (crit(model(x), y) / 4).backward()
            if (i + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    """
    assert lines(src, "RC101") == []


def test_eval_metric_on_the_test_loader_with_an_eval_named_loss_function():
    # gwinndr/MusicTransformer-Pytorch#10 as written: `eval_model(model, test_loader,
    # eval_loss_func)`; the loss function's name says "eval" but names no data
    src = """
        import torch.nn as nn
        eval_loss_func = nn.CrossEntropyLoss(ignore_index=0)
        best_eval_acc = 0.0
        for epoch in range(epochs):
            train_epoch(epoch, model, train_loader, train_loss_func, opt)
            eval_loss, eval_acc = eval_model(model, test_loader, eval_loss_func)
            if(eval_acc > best_eval_acc):
                best_eval_acc = eval_acc
                torch.save(model.state_dict(), "best_acc.pickle")
    """
    assert lines(src, "RC704") == [9]


def test_project_scaler_class_with_another_name_built_from_the_statistics():
    # LeiBAI/AGCRN#15 as written: `MinMax01Scaler(minimum, maximum)` in normalize_dataset()
    src = """
        class MinMax01Scaler:
            def __init__(self, min, max):
                self.min, self.max = min, max
            def transform(self, data):
                return (data - self.min) / (self.max - self.min)
        def normalize_dataset(data):
            minimum = data.min()
            maximum = data.max()
            scaler = MinMax01Scaler(minimum, maximum)
            data = scaler.transform(data)
            return data, scaler
        def split_data_by_ratio(data, test_ratio):
            n = data.shape[0]
            test_data = data[-int(n * test_ratio):]
            train_data = data[:-int(n * test_ratio)]
            return train_data, test_data
        def get_dataloader(data):
            data, scaler = normalize_dataset(data)
            return split_data_by_ratio(data, 0.2)
    """
    assert lines(src, "RC402") == [19]


def test_best_test_metric_under_an_or_chain():
    # the model-selection loop of FreedomIntelligence/TextClassificationBenchmark (main.py):
    # `if len(percisions) == 0 or percision > max(percisions): model.save(...)` on the test set
    src = """
        percisions = []
        for i in range(max_epoch):
            for batch in train_iter:
                optimizer.zero_grad(); loss_fun(model(batch.text), batch.label).backward(); optimizer.step()
            percision = evaluation(model, test_iter)
            if len(percisions) == 0 or percision > max(percisions):
                filename = model.save(metric=percision)
            percisions.append(percision)
    """
    assert lines(src, "RC704") == [7]


def test_test_evaluator_passed_as_the_validation_evaluator():
    # xuanmay2701/shapeformer#2 as written: an evaluator built over the test loader goes to
    # train_runner() as `val_evaluator`; validate() returns the best value it keeps
    src = """
        class SupervisedTrainer:
            def __init__(self, model, dataloader, device):
                self.model, self.dataloader = model, dataloader
        def validate(val_evaluator, best_value):
            metrics = val_evaluator.evaluate()
            if metrics["accuracy"] > best_value:
                best_value = metrics["accuracy"]
            return metrics, best_value
        def train_runner(model, trainer, val_evaluator, epochs):
            best_value = 0.0
            for epoch in range(epochs):
                trainer.train_epoch(epoch)
                aggr_metrics_val, best_value = validate(val_evaluator, best_value)
        test_evaluator = SupervisedTrainer(model, test_loader, device)
        val_evaluator = SupervisedTrainer(model, val_loader, device)
        train_runner(model, trainer, test_evaluator, 100)
        train_runner(model, trainer, val_evaluator, 100)
    """
    assert lines(src, "RC704") == [17]


def test_a_second_ungated_step_is_rc107s_case_not_rc101s():
    # mzolfaghari/ECO-pytorch#1: the step inside the iter_size gate and again after it
    src = """
        optimizer.zero_grad()
        for i, (x, y) in enumerate(loader):
            loss = crit(model(x), y) / iter_size
            loss.backward()
            if (i + 1) % iter_size == 0:
                optimizer.step()
                optimizer.zero_grad()
            optimizer.step()
    """
    assert lines(src, "RC101") == [] and lines(src, "RC107") == [9]


def test_normalizing_helper_of_another_module_then_a_split_here():
    # hkuedl/Lightweight-Federated-NILM#2 with the normalization in a neighbour module
    # (fixtures/projects/recall_normalize_helper)
    root = BUGGY.parent.parent / "projects" / "recall_normalize_helper"
    train = root / "train.py"
    found = [f for f in lint_source(train.read_bytes(), str(train), ALL).findings if f.code == "RC402"]
    assert [f.line for f in found] == [11]
    assert "another module" in found[0].message


def test_normalizing_helper_then_a_direct_split_in_the_same_file():
    src = """
        from sklearn.model_selection import train_test_split
        def normalize(data):
            return (data - data.mean(axis=0)) / data.std(axis=0)
        X = load()
        X = normalize(X)
        X2 = load()
        A, B = train_test_split(X, test_size=0.2)
        C, D = train_test_split(X2, test_size=0.2)
        C = normalize(C)
    """
    assert lines(src, "RC402") == [6]
