"""Tiny training loops for the runtime monitor tests (no package: imported by path via sys.path)."""

from __future__ import annotations


import torch
from torch import nn


def make_data(n=256, d=10, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, classes, generator=g)
    y = (x @ w).argmax(1)
    return x, y


def mlp(d=10, h=32, classes=3, act=nn.ReLU, dropout=0.0, bn=False, depth=2):
    layers = []
    width = d
    for _ in range(depth):
        layers.append(nn.Linear(width, h))
        if bn:
            layers.append(nn.BatchNorm1d(h))
        layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(self.drop(x.flatten(1)))


def batches(x, y, bs=32, shuffle=True, seed=0, epochs=1):
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    for _ in range(epochs):
        idx = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        for i in range(0, n - bs + 1, bs):
            j = idx[i:i + bs]
            yield x[j], y[j]


def train(model, opt, x, y, *, mon=None, crit=None, epochs=3, bs=32, shuffle=True, zero_grad=True,
          accum=1, sched=None, sched_per_batch=False, seed=0, val=None, observe=False):
    crit = crit or nn.CrossEntropyLoss()
    model.train()
    step = 0
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    for epoch in range(epochs):
        idx = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
        for k, i in enumerate(range(0, n - bs + 1, bs)):
            j = idx[i:i + bs]
            out = model(x[j])
            loss = crit(out, y[j]) / accum
            if observe and mon is not None:
                mon.observe_loss(loss)
            loss.backward()
            if (k + 1) % accum == 0:
                opt.step()
                step += 1
                if zero_grad:
                    opt.zero_grad()
                if sched is not None and sched_per_batch:
                    sched.step()
        if sched is not None and not sched_per_batch:
            sched.step()
        if val is not None and mon is not None:
            model.eval()
            with torch.no_grad():
                vx, vy = val
                vl = crit(model(vx), vy).item()
            model.train()
            mon.log_val(loss=vl)
    return step
