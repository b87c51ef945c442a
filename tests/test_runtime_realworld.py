"""The monitor on training scripts in the shapes of real ones (issue 10 and the monitor items of
issue 11): a DCGAN loop, nanoGPT-style gradient accumulation, a manual-SGD truncated-BPTT language
model with whole-model checkpoints, EMA copies, torch.jit/export during a run, and hostile API use.
Every script runs on synthetic data, under ``recipecheck run`` (in-process and as a subprocess)
and/or the API."""

from __future__ import annotations

import copy
import io
import json
import math
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from recipecheck.runtime import Monitor, monitor  # noqa: E402
from recipecheck.runtime.launcher import run_script  # noqa: E402
from runtime_helpers.loops import make_data, mlp, train  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _run(tmp_path, source, args=(), name="train.py", **kw):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    rep = tmp_path / "rep"
    code = run_script(str(path), list(args), report=str(rep), summary=kw.pop("summary", False), **kw)
    data = json.loads((rep / "report.json").read_text())
    return code, data


def _codes(data, severities=("error", "warning")):
    return sorted(f["code"] for f in data["findings"] if f["severity"] in severities)


def _first(series, step=1):
    return series["value"][series["step"].index(step)]


# --------------------------------------------------------------------------------------------
# item 2: a DCGAN loop
# --------------------------------------------------------------------------------------------

GAN = '''
import argparse, torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

p = argparse.ArgumentParser()
p.add_argument("--nozero-d", action="store_true")
p.add_argument("--epochs", type=int, default=3)
a = p.parse_args()
torch.manual_seed(0)
nz = 8

class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(nz, 32), nn.BatchNorm1d(32), nn.ReLU(True), nn.Linear(32, 16), nn.Tanh())
    def forward(self, z):
        return self.main(z)

class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(0.2, inplace=True), nn.Linear(32, 1), nn.Sigmoid())
    def forward(self, x):
        return self.main(x).view(-1)

netG, netD = Generator(), Discriminator()
criterion = nn.BCELoss()
optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
loader = DataLoader(TensorDataset(torch.randn(640, 16) * 0.3 + 0.5), batch_size=32, shuffle=True)
for epoch in range(a.epochs):
    for i, (real,) in enumerate(loader):
        # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
        if not a.nozero_d:
            netD.zero_grad()
        b = real.size(0)
        label = torch.full((b,), 1.0)
        errD_real = criterion(netD(real), label)
        errD_real.backward()
        fake = netG(torch.randn(b, nz))
        label.fill_(0.0)
        errD_fake = criterion(netD(fake.detach()), label)
        errD_fake.backward()
        optimizerD.step()
        # (2) update G: maximize log(D(G(z))); this backward also fills D's gradients
        netG.zero_grad()
        label.fill_(1.0)
        errG = criterion(netD(fake), label)
        errG.backward()
        optimizerG.step()
print("DONE")
'''


def test_dcgan_healthy_no_false_rt104_and_one_loss_series_per_optimizer(tmp_path):
    code, data = _run(tmp_path, GAN)
    assert code == 0
    assert _codes(data) == [], data["findings"]
    series = data["series"]
    d_loss, g_loss = series["loss"], series["loss/opt1-Generator"]
    assert len(d_loss["step"]) == len(g_loss["step"]) == 60
    # D's loss is errD_real + errD_fake (what DCGAN prints as Loss_D), each ~ln 2 at init
    assert _first(d_loss) == pytest.approx(2 * math.log(2), abs=0.2)
    assert _first(g_loss) == pytest.approx(math.log(2), abs=0.2)
    obs = data["run"]["observed"]
    assert obs["optimizer_steps"] == 60 and len(obs["optimizers"]) == 2
    assert "RT104" in data["run"]["checks_ran"]


def test_dcgan_without_netd_zero_grad_fires_rt104_on_the_discriminator(tmp_path):
    code, data = _run(tmp_path, GAN, ["--nozero-d"])
    assert code == 0
    rt104 = [f for f in data["findings"] if f["code"] == "RT104"]
    assert len(rt104) == 1, data["findings"]
    assert rt104[0]["where"].startswith("main.") and "Adam (opt0-Discriminator)" in rt104[0]["message"]
    assert rt104[0]["step"] <= 4


# --------------------------------------------------------------------------------------------
# item 3: nanoGPT-style gradient accumulation with F.cross_entropy
# --------------------------------------------------------------------------------------------

NANOGPT = '''
import torch
from torch import nn
from torch.nn import functional as F

torch.manual_seed(0)
V, T, B = 65, 16, 8
gradient_accumulation_steps = 4

class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, 32)
        self.ln_f = nn.LayerNorm(32)
        self.lm_head = nn.Linear(32, V, bias=False)
        self.apply(self._init_weights)
    def _init_weights(self, m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            torch.nn.init.normal_(m.weight, mean=0.0, std=0.02)
    def forward(self, idx, targets=None):
        logits = self.lm_head(F.gelu(self.ln_f(self.wte(idx))))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

data = torch.randint(0, V, (20000,))
def get_batch():
    ix = torch.randint(len(data) - T - 1, (B,))
    return torch.stack([data[i:i + T] for i in ix]), torch.stack([data[i + 1:i + 1 + T] for i in ix])

model = TinyLM()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
X, Y = get_batch()
for it in range(30):
    for micro_step in range(gradient_accumulation_steps):
        logits, loss = model(X, Y)
        loss = loss / gradient_accumulation_steps
        X, Y = get_batch()
        loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if it == 0:
        print("iter 0 loss", loss.item() * gradient_accumulation_steps)
'''


def test_nanogpt_accumulation_loss_is_what_the_script_optimizes(tmp_path, capsys):
    code, data = _run(tmp_path, NANOGPT)
    assert code == 0
    assert _codes(data) == [], data["findings"]
    loss = data["series"]["loss"]
    assert len(loss["step"]) == 30
    # the sum of the four scaled micro-batch losses: ln 65 at init (not ln 65 / 4, not / 2)
    assert _first(loss) == pytest.approx(math.log(65), abs=0.1)
    assert data["run"]["observed"]["criterion"] == "CrossEntropyLoss"  # F.cross_entropy was seen
    assert "RT101" in data["run"]["checks_ran"]


def test_functional_cross_entropy_overconfident_init_still_fires_rt101(tmp_path):
    src = NANOGPT.replace("std=0.02", "std=2.0")
    code, data = _run(tmp_path, src)
    assert "RT101" in _codes(data)


def test_api_accumulation_with_observe_loss_sums_micro_batches():
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = make_data(256)
    with monitor(model, opt, report=None, summary=False, num_classes=3) as mon:
        train(model, opt, x, y, mon=mon, epochs=1, accum=4, observe=True)
    first = mon.series["loss"]["value"][0]
    with torch.no_grad():
        direct = nn.functional.cross_entropy(model(x[:32]), y[:32]).item()  # a loose sanity scale
    assert first > 0.5 * direct and not [f for f in mon.findings if f.code == "RT101"]


# --------------------------------------------------------------------------------------------
# items 4 and 8: manual-SGD truncated-BPTT LSTM (word_language_model shape), torch.save(model)
# --------------------------------------------------------------------------------------------

WORD_LM = '''
import argparse, math, os, torch
from torch import nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=5.0)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--save", default="model.pt")
p.add_argument("--functional", action="store_true")
a = p.parse_args()
torch.manual_seed(0)
ntokens, bptt, bsz = 40, 10, 8
corpus = (torch.arange(4000) * 7 + torch.arange(4000) // 13) % ntokens  # learnable, not random

def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[:nbatch * bsz].view(bsz, -1).t().contiguous()

train_data = batchify(corpus, bsz)

class RNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(ntokens, 32)
        self.rnn = nn.LSTM(32, 32)
        self.decoder = nn.Linear(32, ntokens)
    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, ntokens)
        return F.log_softmax(decoded, dim=1), hidden
    def init_hidden(self, bsz):
        w = next(self.parameters())
        return (w.new_zeros(1, bsz, 32), w.new_zeros(1, bsz, 32))

def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)

def get_batch(source, i):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)

model = RNNModel()
criterion = nn.NLLLoss()
lr = a.lr
for epoch in range(a.epochs):
    model.train()
    hidden = model.init_hidden(bsz)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        data, targets = get_batch(train_data, i)
        model.zero_grad()
        hidden = repackage_hidden(hidden)
        output, hidden = model(data, hidden)
        loss = F.nll_loss(output, targets) if a.functional else criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
    model.eval()
    with torch.no_grad():
        out, _ = model(get_batch(train_data, 0)[0], model.init_hidden(bsz))
    with open(a.save, "wb") as f:
        torch.save(model, f)  # whole-model checkpoint, as word_language_model does
with open(a.save, "rb") as f:
    model = torch.load(f, weights_only=False)
print("RELOADED", type(model).__name__, len(model._forward_pre_hooks), "_compiled_call_impl" in model.__dict__)
'''


@pytest.mark.parametrize("functional", [False, True])
def test_manual_sgd_tbptt_lm_observed_checked_and_saved(tmp_path, capsys, functional):
    args = ["--save", str(tmp_path / "model.pt")] + (["--functional"] if functional else [])
    code, data = _run(tmp_path, WORD_LM, args, summary=True)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "RELOADED RNNModel 0 False" in out  # torch.save of the whole model worked, no monitor state
    obs = data["run"]["observed"]
    n_batches = len(range(0, 4000 // 8 - 1, 10))
    assert obs["optimizer_steps"] == 0 and obs["manual_update_steps"] == 3 * n_batches
    loss = data["series"]["loss"]
    assert loss["step"][:3] == [1, 2, 3] and len(loss["step"]) == 3 * n_batches
    assert _first(loss) == pytest.approx(math.log(40), abs=0.3)
    assert loss["value"][-1] < 0.7 * loss["value"][0]  # it learns
    # item 8: the stateful LSTM must see batches in order; no DataLoader named anywhere
    assert _codes(data) == [], data["findings"]
    assert "truncated BPTT" in data["run"]["checks_skipped"]["RT110"]
    assert {"RT101", "RT104", "RT106", "RT112"} <= set(data["run"]["checks_ran"])
    assert "manual update step(s)" in err and "RT110 skipped" in err


def test_manual_sgd_huge_lr_reports_the_real_initial_loss(tmp_path):
    code, data = _run(tmp_path, WORD_LM, ["--lr", "2000", "--epochs", "1", "--save", str(tmp_path / "m.pt")])
    assert code == 0
    rt101 = [f for f in data["findings"] if f["code"] == "RT101"]
    assert not rt101, rt101  # the first loss is ~ln 40, not an average of exploded losses
    assert _first(data["series"]["loss"]) == pytest.approx(math.log(40), abs=0.3)


def test_manual_loop_without_zero_grad_and_no_clip_fires_rt104(tmp_path):
    # the torch.no_grad() form of a manual update (p changes in place), no reset, no clipping
    src = WORD_LM.replace("        model.zero_grad()\n", "").replace(
        "        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)\n", "").replace(
        "            p.data.add_(p.grad, alpha=-lr)", "            with torch.no_grad():\n"
                                                   "                p.add_(p.grad, alpha=-lr * 0.01)")
    code, data = _run(tmp_path, src, ["--epochs", "1", "--save", str(tmp_path / "m.pt")])
    assert code == 0
    assert "RT104" in _codes(data), data["findings"]


def test_stateless_loop_without_dataloader_fires_rt110_without_naming_a_dataloader(tmp_path):
    src = '''
    import torch
    from torch import nn
    torch.manual_seed(0)
    x = torch.randn(256, 10); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    for epoch in range(3):
        for i in range(0, 256, 32):
            opt.zero_grad()
            crit(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
        with torch.no_grad():
            model.eval(); model(x[:8]); model.train()
    '''
    code, data = _run(tmp_path, src)
    rt110 = [f for f in data["findings"] if f["code"] == "RT110"]
    assert rt110 and "DataLoader" not in rt110[0]["message"] and "randperm" in rt110[0]["message"]


# --------------------------------------------------------------------------------------------
# item 4: loud when nothing was observed
# --------------------------------------------------------------------------------------------

def test_nothing_observed_is_said_not_no_findings(tmp_path, capsys):
    src = '''
    import torch
    from torch import nn
    model = nn.Linear(4, 2)
    with torch.no_grad():
        print(model(torch.randn(3, 4)).shape)
    '''
    code, data = _run(tmp_path, src, summary=True)
    err = capsys.readouterr().err
    assert code == 0
    assert "nothing to check" in err and "no runtime findings" not in err
    assert data["run"]["checks_ran"] == [] and set(data["run"]["checks_skipped"]) >= {"RT101", "RT104"}


# --------------------------------------------------------------------------------------------
# item 5: a learning rate that kills the network
# --------------------------------------------------------------------------------------------

def _dead_net_run(lr, steps=120, functional=True):
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(20, 64), nn.Linear(64, 64), nn.Linear(64, 10)

        def forward(self, x):
            return self.fc3(nn.functional.relu(self.fc2(nn.functional.relu(self.fc1(x)))))

    model = Net()
    opt = torch.optim.Adadelta(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1024, 20, generator=g)
    y = (x[:, :10]).argmax(1)
    crit = nn.CrossEntropyLoss()
    with monitor(model, opt, criterion=crit, report=None, summary=False) as mon:
        for s in range(steps):
            if s % 32 == 0:
                order = torch.randperm(1024, generator=g)
            j = order[(s % 32) * 32:(s % 32 + 1) * 32]
            opt.zero_grad()
            crit(model(x[j]), y[j]).backward()
            opt.step()
    assert not mon.run["check_errors"], mon.run["check_errors"]
    return mon


def test_lr_that_kills_the_network_is_caught_early():
    mon = _dead_net_run(lr=100.0, steps=320)  # Adadelta's lr is 1.0: x100, as in the mnist example
    found = {f.code: f for f in mon.findings}
    assert "RT103" in found and found["RT103"].step <= 4  # far out of band in the first steps
    assert "RT107" in found and "F.relu" in found["RT107"].message  # functional ReLUs seen via gradients
    assert "RT108" in found and "exactly zero" in found["RT108"].message
    assert "RT112" in found and "chance level" in found["RT112"].message


def test_healthy_lr_quiet_on_the_same_network():
    mon = _dead_net_run(lr=1.0, steps=320)
    assert [f.code for f in mon.findings if f.severity != "info"] == []


# --------------------------------------------------------------------------------------------
# item 6: RT112 on slow starters, and its advice with RT104
# --------------------------------------------------------------------------------------------

def _loss_run(values, n_val=None):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.0)
    with monitor(None, opt, report=None, summary=False, checks=["RT112"]) as mon:
        for v in values:
            opt.zero_grad()
            loss = p.sum() + v
            mon.observe_loss(loss)
            loss.backward()
            opt.step()
    return mon


def test_rt112_not_early_and_withdrawn_when_the_loss_later_falls():
    plateau = [5.0 + 0.01 * math.sin(i) for i in range(260)]
    later = [5.0 * (0.99 ** i) for i in range(200)]
    mon = _loss_run(plateau + later)
    assert [f.code for f in mon.findings] == []
    withdrawn = mon.run.get("withdrawn") or []
    assert withdrawn and withdrawn[0]["code"] == "RT112" and withdrawn[0]["step"] >= 200
    flat = _loss_run([5.0 + 0.01 * math.sin(i) for i in range(150)])
    assert flat.findings == []  # a short plateau is not reported (warm-up)


def test_rt112_advice_points_at_rt105():
    # StepLR stepped per batch kills the learning rate within the first epoch: the loss stalls
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    x, y = make_data(512)  # 16 batches per pass
    crit = nn.CrossEntropyLoss()
    with monitor(model, opt, scheduler=sched, criterion=crit, report=None, summary=False,
                 checks=["RT105", "RT112"]) as mon:
        train(model, opt, x, y, mon=mon, crit=crit, epochs=20, sched=sched, sched_per_batch=True,
              val=make_data(32, seed=1))
    msgs = {f.code: f.message for f in mon.findings}
    assert "RT105" in msgs and "RT112" in msgs, msgs
    assert "(RT105)" in msgs["RT112"] and "larger learning rate" not in msgs["RT112"]


# --------------------------------------------------------------------------------------------
# item 7: RT105 decided at the end of the first pass
# --------------------------------------------------------------------------------------------

SCHED = '''
import sys, torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
kind = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(1600, 10); y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # 50 batches
model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
sched = (torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1) if kind == "step"
         else torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=200))
crit = nn.CrossEntropyLoss()
for epoch in range(5):
    for xb, yb in loader:
        opt.zero_grad()
        crit(model(xb), yb).backward()
        opt.step()
        sched.step()  # BUG: per batch
'''


def test_rt105_reports_the_per_pass_rate_at_the_end_of_epoch_0(tmp_path):
    code, data = _run(tmp_path, SCHED, ["step"])
    rt105 = [f for f in data["findings"] if f["code"] == "RT105"]
    assert len(rt105) == 1
    assert "ran 50 times in one pass" in rt105[0]["message"] and "about 50x" in rt105[0]["message"]
    assert rt105[0]["step"] == 51  # decided when epoch 1 begins


def test_rt105_cosine_horizon_per_batch_reported_when_it_runs_out_with_the_pass_rate(tmp_path):
    code, data = _run(tmp_path, SCHED, ["cosine"])
    rt105 = [f for f in data["findings"] if f["code"] == "RT105"]
    assert len(rt105) == 1 and "about 50x" in rt105[0]["message"] and "T_max=200" in rt105[0]["message"]


SCHEDULES = '''
import sys, torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
kind, epochs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stop = int(sys.argv[4]) if len(sys.argv) > 4 else None
torch.manual_seed(0)
x = torch.randn(n, 10); y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
L = torch.optim.lr_scheduler
per_batch = True
if kind == "cosine-epochs":            # BUG: T_max counts epochs
    sched = L.CosineAnnealingLR(opt, T_max=30)
elif kind == "step-epochs":            # BUG: step_size counts epochs
    sched = L.StepLR(opt, step_size=30, gamma=0.1)
elif kind == "multistep-epochs":       # BUG: milestones count epochs
    sched = L.MultiStepLR(opt, milestones=[30, 45])
elif kind == "exp-epochs":             # BUG: gamma is a per-epoch decay
    sched = L.ExponentialLR(opt, gamma=0.9)
elif kind == "onecycle":
    sched = L.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * len(loader))
elif kind == "cosine-batches":
    sched = L.CosineAnnealingLR(opt, T_max=epochs * len(loader))
elif kind == "cosine-dataset-batches":  # len(dataset) // bs: one step per epoch short of len(loader)
    sched = L.CosineAnnealingLR(opt, T_max=epochs * (n // 32))
elif kind == "warmup-lambda":
    sched = L.LambdaLR(opt, lambda it: min(1.0, (it + 1) / 100))
elif kind == "warmup-cosine":
    w = 20
    sched = L.SequentialLR(opt, [L.LinearLR(opt, 0.01, 1.0, total_iters=w),
                                 L.CosineAnnealingLR(opt, T_max=epochs * len(loader) - w)], milestones=[w])
elif kind == "multistep-iterations":
    sched = L.MultiStepLR(opt, milestones=[2 * len(loader), 4 * len(loader)])
elif kind == "exp-batches":
    sched = L.ExponentialLR(opt, gamma=0.995)
elif kind == "plateau-epochs":         # BUG: patience counts epochs
    sched = L.ReduceLROnPlateau(opt, patience=10)
elif kind == "plateau-iterations":
    sched = L.ReduceLROnPlateau(opt, patience=1000)
elif kind == "step-per-epoch":
    sched, per_batch = L.StepLR(opt, step_size=2, gamma=0.1), False
elif kind == "cosine-per-epoch":
    sched, per_batch = L.CosineAnnealingLR(opt, T_max=epochs), False
crit = nn.CrossEntropyLoss()
steps = 0
for epoch in range(epochs):
    for xb, yb in loader:
        opt.zero_grad()
        loss = crit(model(xb), yb)
        loss.backward()
        opt.step()
        steps += 1
        if per_batch:
            sched.step(loss.item()) if kind.startswith("plateau") else sched.step()
        if stop and steps == stop:
            sys.exit(0)
    if not per_batch:
        sched.step()
'''


@pytest.mark.parametrize("kind,factor,what", [
    ("cosine-epochs", 50, "T_max=30"),
    ("step-epochs", 50, "step_size=30"),
    ("multistep-epochs", 50, "milestones [30, 45]"),
    ("exp-epochs", 50, "gamma=0.9"),
    ("plateau-epochs", 50, "patience=10"),
])
def test_rt105_epoch_sized_schedule_stepped_per_batch_decided_at_the_end_of_epoch_0(tmp_path, kind, factor, what):
    code, data = _run(tmp_path, SCHEDULES, [kind, "3", "1600"])  # 50 batches per pass
    rt105 = [f for f in data["findings"] if f["code"] == "RT105"]
    assert code == 0 and len(rt105) == 1, data["findings"]
    msg = rt105[0]["message"]
    assert rt105[0]["step"] == 51 and rt105[0]["epoch"] == 1  # when epoch 1 begins
    assert f"ran 50 times in one pass" in msg and f"about {factor}x faster" in msg and what in msg, msg


def test_rt105_long_horizon_per_batch_is_judged_when_the_run_outlives_it(tmp_path):
    # T_max=200 (epochs) stepped per batch over 50 batches: through epoch 3 this is exactly a correct
    # 4-epoch per-batch cosine (next test), so the verdict waits for step 200 + slack, not the end of the run
    code, data = _run(tmp_path, SCHED, ["cosine"])
    rt105 = [f for f in data["findings"] if f["code"] == "RT105"]
    assert len(rt105) == 1 and 200 < rt105[0]["step"] <= 212
    assert "about 50x" in rt105[0]["message"] and "T_max=200" in rt105[0]["message"]


@pytest.mark.parametrize("kind,epochs,n", [
    ("cosine-batches", 4, 1600),  # the same shape as the T_max=200 bug above, for the 4 epochs it plans
    ("onecycle", 5, 1600),
    ("cosine-batches", 5, 1600),
    ("cosine-dataset-batches", 5, 1610),  # 51 batches per pass, T_max = 5 * 50
    ("warmup-lambda", 5, 1600),
    ("warmup-cosine", 5, 1600),
    ("multistep-iterations", 5, 1600),
    ("exp-batches", 5, 1600),
    ("plateau-iterations", 5, 1600),
    ("step-per-epoch", 6, 1600),
    ("cosine-per-epoch", 6, 1600),
])
def test_rt105_quiet_on_schedules_sized_for_how_they_are_stepped(tmp_path, kind, epochs, n):
    code, data = _run(tmp_path, SCHEDULES, [kind, str(epochs), str(n)])
    assert code == 0
    assert [f for f in data["findings"] if f["code"] == "RT105"] == []
    assert "RT105" in data["run"]["checks_ran"] and data["run"]["epochs"] == epochs


def test_rt105_run_ending_inside_the_first_pass_uses_the_loaders_length(tmp_path):
    # the run stops after 12 of 50 batches: the rate per pass is 50, not the 11 or 12 steps seen
    code, data = _run(tmp_path, SCHEDULES, ["multistep-epochs", "3", "1600", "40"])
    rt105 = [f for f in data["findings"] if f["code"] == "RT105"]
    assert len(rt105) == 1, data["findings"]
    msg = rt105[0]["message"]
    assert "first 40 optimizer steps" in msg and "about 50x faster" in msg and "50 batches per pass" in msg, msg


# --------------------------------------------------------------------------------------------
# item 1: pickling, torch.save, deepcopy, jit, export of a monitored model
# --------------------------------------------------------------------------------------------

def _no_monitor_state(m):
    for mod in m.modules():
        assert "_compiled_call_impl" not in mod.__dict__
        assert not mod._forward_pre_hooks and not mod._forward_hooks
    for p in m.parameters():
        assert not (p._post_accumulate_grad_hooks or {})


def test_save_pickle_deepcopy_jit_export_of_a_monitored_model():
    torch.manual_seed(0)
    model = mlp(dropout=0.1, bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    x, y = make_data(256)
    with monitor(model, opt, criterion=crit, report=None, summary=False) as mon:
        ema = None
        for step, i in enumerate(range(0, 256, 32)):
            opt.zero_grad()
            crit(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
            if ema is None:
                ema = copy.deepcopy(model)  # EMA / best-model copy, mid-run
            else:
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.mul_(0.9).add_(pm, alpha=0.1)
            buf = io.BytesIO()
            torch.save(model, buf)  # whole-model checkpoint
            buf.seek(0)
            _no_monitor_state(torch.load(buf, weights_only=False))
            _no_monitor_state(pickle.loads(pickle.dumps(model)))
            _no_monitor_state(copy.deepcopy(model))
            torch.save(crit, io.BytesIO())
        model.eval()
        scripted = torch.jit.script(model)
        traced = torch.jit.trace(model, x[:4])
        exported = torch.export.export(model, (x[:4],))
        with torch.no_grad():
            ref = model(x[:4])
            assert torch.equal(scripted(x[:4]), ref) and torch.equal(traced(x[:4]), ref)
            assert torch.equal(exported.module()(x[:4]), ref)
        model.train()
    _no_monitor_state(ema)
    assert mon.step == 8 and not mon.run["check_errors"]
    _no_monitor_state(model)


def test_torch_save_whole_model_under_recipecheck_run_subprocess(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(WORD_LM))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "recipecheck", "run", "--report", str(tmp_path / "rep"), str(script),
                        "--epochs", "1", "--save", str(tmp_path / "m.pt")],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "RELOADED RNNModel 0 False" in r.stdout and "Traceback" not in r.stderr


# --------------------------------------------------------------------------------------------
# issue 11 item 9: hostile API use
# --------------------------------------------------------------------------------------------

def test_functional_call_with_many_parameters_scans_the_heap_once(tmp_path, monkeypatch):
    import gc

    calls = {"get_objects": 0, "get_referrers": 0}
    real_objects, real_referrers = gc.get_objects, gc.get_referrers

    def count_objects(*a, **k):
        calls["get_objects"] += 1
        return real_objects(*a, **k)

    def count_referrers(*a, **k):
        calls["get_referrers"] += 1
        return real_referrers(*a, **k)

    monkeypatch.setattr(gc, "get_objects", count_objects)
    monkeypatch.setattr(gc, "get_referrers", count_referrers)
    src = '''
    import torch
    from torch import nn
    from torch.func import functional_call
    torch.manual_seed(0)
    net = nn.Sequential(*[nn.Linear(4, 4) for _ in range(300)])  # 600 parameter tensors
    params = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}
    opt = torch.optim.SGD(list(params.values()), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        functional_call(net, params, (torch.randn(2, 4),)).sum().backward()
        opt.step()
    '''
    code, data = _run(tmp_path, src)
    assert code == 0 and data["run"]["steps"] == 3
    assert calls["get_objects"] <= 2 and calls["get_referrers"] <= 4, calls


def test_reused_monitor_raises_instead_of_watching_nothing():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = Monitor(model, opt, report=None, summary=False)
    x, y = make_data(64)
    with mon:
        train(model, opt, x, y, mon=mon, epochs=1)
    with pytest.raises(RuntimeError, match="create a new Monitor"):
        with mon:
            pass


def test_two_monitors_closed_out_of_order_restore_everything():
    from torch.utils.data import DataLoader

    backward, it, ce = torch.Tensor.backward, DataLoader.__iter__, nn.functional.cross_entropy
    a = Monitor(report=None, summary=False, patch_backward=True, patch_dataloader=True)
    b = Monitor(report=None, summary=False, patch_backward=True, patch_dataloader=True)
    a.attach()
    b.attach()
    model = mlp()
    crit = nn.CrossEntropyLoss()
    model(torch.randn(2, 10))
    a.add_model(model)
    b.add_model(model)
    a.add_criterion(crit)
    b.add_criterion(crit)
    a.close()  # out of order
    p = nn.Parameter(torch.ones(2))
    (p * 2).sum().backward()  # b's patch still works with a's removed from the chain
    assert torch.equal(p.grad, torch.full((2,), 2.0))
    b.close()
    assert torch.Tensor.backward is backward and DataLoader.__iter__ is it
    assert nn.functional.cross_entropy is ce
    assert "_compiled_call_impl" not in model.__dict__ and "_compiled_call_impl" not in crit.__dict__


def test_exception_with_a_raising_str_is_recorded_not_raised():
    from recipecheck.runtime.checks.base import Check

    class Nasty(Exception):
        def __str__(self):
            raise ValueError("no str for you")

    class Bad(Check):
        code = "RT997"
        name = "bad"

        def on_post_step(self, mon, opt):
            raise Nasty()

    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = make_data(64)
    with monitor(model, opt, report=None, summary=False, checks=[Bad()]) as mon:
        train(model, opt, x, y, mon=mon, epochs=1)
    assert mon.run["check_errors"][0]["check"] == "RT997"
    assert "Nasty" in mon.run["check_errors"][0]["error"]


def test_log_val_with_a_non_scalar_tensor_does_not_raise():
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = make_data(64)
    with monitor(model, opt, report=None, summary=False) as mon:
        train(model, opt, x, y, mon=mon, epochs=1)
        mon.log_val(loss=torch.tensor([0.5, 0.7]), acc=torch.tensor(0.9))
    assert "val/acc" in mon.series and "val/loss" not in mon.series
    assert any("val/loss" in n for n in mon.run["notes"])


def test_torch_compile_and_jit_script_during_a_recipecheck_run(tmp_path):
    src = '''
    import torch
    from torch import nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    crit = nn.CrossEntropyLoss()
    x = torch.randn(64, 10); y = torch.randint(0, 3, (64,))
    for i in range(12):
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
        if i == 5:
            s = torch.jit.script(model)
            print("SCRIPTED", torch.equal(s(x), model(x)))
    '''
    code, data = _run(tmp_path, src)
    assert code == 0 and data["run"]["steps"] == 12 and not data["run"]["check_errors"]


def test_gradscaler_scaled_loss_is_recorded_unscaled(tmp_path):
    src = '''
    import torch
    from torch import nn
    torch.manual_seed(0)
    x = torch.randn(256, 10); y = torch.randint(0, 4, (256,))
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16, growth_interval=5)
    for i in range(40):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i % 8 * 32:(i % 8 + 1) * 32]), y[i % 8 * 32:(i % 8 + 1) * 32])
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    '''
    code, data = _run(tmp_path, src)
    assert code == 0 and data["run"]["steps"] == 40
    values = data["series"]["loss"]["value"]
    assert max(values) < 3 and _first(data["series"]["loss"]) == pytest.approx(math.log(4), abs=0.4)
    assert not {"RT101", "RT106", "RT112"} & set(_codes(data)), data["findings"]  # (RT110: unshuffled, rightly)


MNIST = '''
import argparse, torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.optim.lr_scheduler import StepLR

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=1.0)
p.add_argument("--epochs", type=int, default=3)
a = p.parse_args()

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)
    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout1(torch.flatten(x, 1))
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)

torch.manual_seed(1)
g = torch.Generator().manual_seed(0)
protos = torch.randn(10, 1, 12, 12, generator=g)
y = torch.randint(0, 10, (1280,), generator=g)
x = protos[y] + 0.5 * torch.randn(1280, 1, 12, 12, generator=g)
train_loader = DataLoader(TensorDataset(x[:1024], y[:1024]), batch_size=32, shuffle=True)
test_loader = DataLoader(TensorDataset(x[1024:], y[1024:]), batch_size=64)
model = Net()
optimizer = torch.optim.Adadelta(model.parameters(), lr=a.lr)
scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
for epoch in range(1, a.epochs + 1):
    model.train()
    for data, target in train_loader:
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            correct += model(data).argmax(1).eq(target).sum().item()
    print("epoch", epoch, "acc", correct / 256)
    scheduler.step()
'''


def test_mnist_shape_healthy_is_quiet_and_functional_loss_is_seen(tmp_path):
    code, data = _run(tmp_path, MNIST)
    assert code == 0
    assert _codes(data) == [], data["findings"]
    # log_softmax + F.nll_loss is the same graph as F.cross_entropy (and the same chance level)
    assert data["run"]["observed"]["criterion"] in ("NLLLoss", "CrossEntropyLoss")
    assert {"RT101", "RT105", "RT107", "RT110", "RT111"} <= set(data["run"]["checks_ran"])


def test_mnist_shape_lr_x100_is_caught(tmp_path):
    code, data = _run(tmp_path, MNIST, ["--lr", "100", "--epochs", "4"])
    assert code == 0
    found = set(_codes(data))
    assert "RT103" in found, data["findings"]  # far out of band at the first steps
    assert found & {"RT107", "RT108", "RT112"}, data["findings"]  # dead units / zero gradients / stuck


def test_gradient_reset_observers_do_not_accumulate_handles():
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = make_data(256)
    with monitor(model, opt, report=None, summary=False, checks=["RT104"]) as mon:
        train(model, opt, x, y, mon=mon, epochs=5)
        n1 = len(mon._handles)
        train(model, opt, x, y, mon=mon, epochs=20)
        assert len(mon._handles) == n1  # observers are removed at the next step, not kept until exit
    assert sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters()) == 0


def test_torch_compile_of_a_monitored_model_trains_identically():
    def run(watch):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        crit = nn.CrossEntropyLoss()
        x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
        mon = Monitor(model, opt, criterion=crit, report=None, summary=False) if watch else None
        if mon:
            mon.attach()
        compiled = torch.compile(model, backend="eager")
        for _ in range(12):
            opt.zero_grad()
            crit(compiled(x), y).backward()
            opt.step()
        if mon:
            mon.close()
            assert mon.step == 12 and not mon.run["check_errors"] and len(mon.series["loss"]["step"]) == 12
        return [p.detach().clone() for p in model.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(run(False), run(True)))
