import re

import libcst as cst

from recipecheck.program.nodes import iter_children

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import build_program
from recipecheck.program.evaluation import NO_GRAD, analysis, forward_text, insert_before_transform
from recipecheck.rule import Context, FixSpec, Rule


def _restoring_train_mode(ctx: Context, transform):
    """The fix with `model.train()` restored where training follows: after inserting eval(),
    RC702 is run on the result and its fixes are applied too. None when training would be
    left in eval mode and RC702 cannot fix it (eval inside the batch loop itself)."""
    from recipecheck.rule import Context as _Ctx
    from recipecheck.rules.rc7xx.rc702_missing_train_mode import MissingTrainMode

    def after_rc702(module: cst.Module):
        new = cst.parse_module(transform(module).code)
        for _ in range(3):  # one train() per training pass; a few passes reach a fixed point
            after = _Ctx(ctx.path, new.code, new, build_program(new))
            rule = MissingTrainMode()
            after._rule = rule
            rule.check(after)
            if not after.reports:
                return new
            if any(r.fix is None or r.fix.transform is None for r in after.reports):
                return None
            new = cst.parse_module(after.reports[0].fix.transform(new).code)
        return None

    try:
        if after_rc702(ctx.module) is None:
            return None
    except Exception:
        return None
    return lambda module: after_rc702(module) or transform(module)


def _over_training_data(el) -> bool:
    loop = el.node.loop
    text = el.node.canon(loop.iter_text) if loop.iter_text else None
    if text is None and loop.iter is not None:
        text = " ".join(n for n in _iter_names(loop.iter))
    return bool(text) and any(t.startswith("train") for t in re.split(r"[^a-z0-9]+|_", text.lower()))


def _iter_names(expr):
    stack = [expr]
    while stack:
        n = stack.pop()
        d = dotted_name(n)
        if d is not None:
            yield d
            continue
        stack.extend(iter_children(n))


class MissingEvalMode(Rule):
    """
    ## What it does
    Flags an evaluation loop that runs while the model is still in training mode. An eval loop
    is a loop that calls the model without calling `backward()` and is under `torch.no_grad()`
    / `torch.inference_mode()` (a `with`, or a decorator on the function), iterates a
    validation/test loader (`val_loader`, `loaders["test"]`, `DataLoader(val_ds)`,
    `MNIST(train=False)`), or sits in a function named like `evaluate`/`validate`/`test`. The
    rule walks back from the loop, through helper calls (`evaluate(model, ...)` called from the
    epoch loop), and through the end of the enclosing loop body (what later epochs see): if
    the last `model.eval()` / `model.train()` reached is `model.train()`, or nothing sets the
    mode of a model that was built or trained in the file, the loop is reported. A
    `model.train()` in the loop's body before the forward undoes the `eval()` before it and is
    reported too. `model.generate(...)` counts as a forward of `model`. An evaluation loop in
    a helper of another module is reported at this file's call, for a model this file passes
    to the helper.

    ## Why is this bad?
    In training mode Dropout keeps dropping units and BatchNorm normalizes with the statistics
    of the evaluation batch (and updates its running averages with evaluation data). The
    reported metric is noisier and worse than the model's real quality, depends on the eval
    batch size, and the BatchNorm running statistics drift towards the validation set. The
    runtime twin RT111 sees this while the run executes.

    Measured (`recipecheck validate RC701`, seeds 0-4): range of the validation accuracy over 10
    evaluations: 0.0667 [0.037, 0.0815] with no model.eval() vs 0 [0, 0] with model.eval() (mean
    [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Mode changes the linter cannot see (a callback framework, `model.apply(fn)`, a helper in
    another file) are not taken into account. A conditional `model.eval()` counts as reached.
    A model built in the file only from layers that behave the same in both modes (no
    Dropout, BatchNorm, RNN/attention/Transformer layers with dropout > 0) is
    reported at `info`: no effect today, wrong once such a layer is added. InstanceNorm does
    not count: in training mode it normalizes each sample by its own statistics, as in
    training (image-to-image GANs sample in training mode on purpose); a model the linter
    cannot see into (imported, a library model) counts as mode-dependent. A custom layer
    branching on `self.training` is not recognized. Not evaluation loops: `eval()` on a parent
    module covers its submodules (`model.eval()` then `model.decoder(x)`), `eval()` set in the
    owning class's constructor or as the first statement of the loop counts, an out-of-memory
    retry loop (`while batch_size: try: ...`) is looked through, and a loop whose model output
    feeds its next input (autoregressive decoding, sampling, an RL rollout) is not reported.
    Models loaded with `from_pretrained` (already in eval mode) or built with `.eval()` chained
    (`Net().eval().to(device)`) are only checked after training; a loss module
    (`criterion = FocalLoss()`) is not a model.

    ## Example
    ```python
    def evaluate(model, loader):
        with torch.no_grad():
            for x, y in loader:
                correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Use instead
    ```python
    def evaluate(model, loader):
        model.eval()
        with torch.no_grad():
            for x, y in loader:
                correct += (model(x).argmax(1) == y).sum().item()
    ```

    ## Options
    None.

    ## Fix safety
    Safe: inserts `model.eval()` (with the name the loop uses) right before the loop, or before
    the `with torch.no_grad():` that holds it. Training code that then needs `model.train()`
    again is reported by RC702, whose fix adds it; when RC702 could not fix it (evaluation
    inside the batch loop itself), no fix is offered.

    ## References
    - PyTorch docs, `nn.Module.eval` and "Saving and loading models" (call `model.eval()` before inference).
    - Srivastava et al. (2014), "Dropout"; Ioffe and Szegedy (2015), "Batch Normalization".
    - Runtime twin: RT111 train-mode-during-eval.
    """

    CODE = "RC701"
    NAME = "missing-eval-mode"
    SEVERITY = Severity.ERROR
    MESSAGE = "evaluation loop runs with the model in training mode"
    FIX = "safe"
    STATIC_TWIN = "RT111"
    VALID = (
        # the prediction helper sets eval mode, or the model was put in eval mode before
        "import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(10, 2)\n        self.drop = nn.Dropout(0.5)\n"
        "    def forward(self, x):\n        return self.fc(self.drop(x))\n"
        "model = Net()\n@torch.no_grad()\ndef predict(model, x):\n    model.eval()\n"
        "    return model(x).argmax(1)\n"
        "@torch.inference_mode()\ndef predict_proba(x):\n    return model(x).softmax(1)\n"
        "model.eval()\nprint(predict(model, torch.randn(4, 10)), predict_proba(torch.randn(4, 10)))\n",
        # the classic pair of helpers, mode set in each
        "import torch\n"
        "def train(model, loader, opt):\n    model.train()\n    for x, y in loader:\n"
        "        opt.zero_grad()\n        model(x).sum().backward()\n        opt.step()\n"
        "def test(model, loader):\n    model.eval()\n    with torch.no_grad():\n"
        "        for x, y in loader:\n            model(x)\n"
        "model = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "for epoch in range(10):\n    train(model, train_loader, opt)\n    test(model, val_loader)\n",
        # nanoGPT: @torch.no_grad() estimate_loss() with eval()/train() inside
        "import torch\n@torch.no_grad()\ndef estimate_loss():\n    model.eval()\n"
        "    for k in range(10):\n        model(*get_batch('val'))\n    model.train()\n"
        "for it in range(1000):\n    if it % 100 == 0:\n        estimate_loss()\n"
        "    loss = model(x)\n    loss.backward()\n    opt.step()\n    opt.zero_grad()\n",
        # the transfer-learning tutorial: one loop for both phases
        "import torch\nfor epoch in range(25):\n    for phase in ['train', 'val']:\n"
        "        if phase == 'train':\n            model.train()\n        else:\n            model.eval()\n"
        "        for x, y in loaders[phase]:\n            opt.zero_grad()\n"
        "            with torch.set_grad_enabled(phase == 'train'):\n                loss = crit(model(x), y)\n"
        "                if phase == 'train':\n                    loss.backward()\n                    opt.step()\n",
        # precise-BN: recompute BatchNorm statistics in train mode over the training data
        "import torch\nmodel = Net()\nmodel.train()\nwith torch.no_grad():\n    for x, _ in train_loader:\n"
        "        model(x)\n",
        # an EMA update under no_grad is not an evaluation
        "import torch\nwith torch.no_grad():\n    for ema_p, p in zip(ema.parameters(), model.parameters()):\n"
        "        ema_p.mul_(0.999).add_(p, alpha=0.001)\n",
        # seq2seq: eval() on the parent covers model.encoder / model.decoder
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class Encoder(nn.Module):\n'
        '    def __init__(self, vocab, hid):\n'
        '        super().__init__()\n'
        '        self.emb = nn.Embedding(vocab, hid)\n'
        '        self.rnn = nn.LSTM(hid, hid, 2, dropout=0.5)\n'
        '\n'
        '    def forward(self, src):\n'
        '        _, (h, c) = self.rnn(self.emb(src))\n'
        '        return h, c\n'
        '\n'
        'class Decoder(nn.Module):\n'
        '    def __init__(self, vocab, hid):\n'
        '        super().__init__()\n'
        '        self.emb = nn.Embedding(vocab, hid)\n'
        '        self.rnn = nn.LSTM(hid, hid, 2, dropout=0.5)\n'
        '        self.out = nn.Linear(hid, vocab)\n'
        '\n'
        '    def forward(self, tok, h, c):\n'
        '        o, (h, c) = self.rnn(self.emb(tok).unsqueeze(0), (h, c))\n'
        '        return self.out(o.squeeze(0)), h, c\n'
        '\n'
        'class Seq2Seq(nn.Module):\n'
        '    def __init__(self, encoder, decoder):\n'
        '        super().__init__()\n'
        '        self.encoder = encoder\n'
        '        self.decoder = decoder\n'
        '\n'
        'encoder = Encoder(1000, 256)\n'
        'decoder = Decoder(1000, 256)\n'
        'model = Seq2Seq(encoder, decoder)\n'
        'optimizer = torch.optim.Adam(model.parameters())\n'
        '\n'
        'def evaluate(model, iterator, criterion):\n'
        '    model.eval()\n'
        '    total = 0.0\n'
        '    with torch.no_grad():\n'
        '        for src, trg in iterator:\n'
        '            h, c = model.encoder(src)\n'
        '            out, h, c = model.decoder(trg[0], h, c)\n'
        '            total += criterion(out, trg[1]).item()\n'
        '    return total / len(iterator)\n'
        '\n'
        'for epoch in range(10):\n'
        '    model.train()\n'
        '    for src, trg in train_iterator:\n'
        '        optimizer.zero_grad()\n'
        '        h, c = model.encoder(src)\n'
        '        out, h, c = model.decoder(trg[0], h, c)\n'
        '        loss = criterion(out, trg[1])\n'
        '        loss.backward()\n'
        '        optimizer.step()\n'
        '    evaluate(model, valid_iterator, criterion)\n'
        ),
        # eval() set once in the constructor of an inference runner
        (
        'import torch\n'
        'import torch.nn as nn\n'
        'import torch.nn.functional as F\n'
        '\n'
        'class Net(nn.Module):\n'
        '    def __init__(self):\n'
        '        super().__init__()\n'
        '        self.drop = nn.Dropout(0.2)\n'
        '        self.fc = nn.Linear(784, 10)\n'
        '\n'
        '    def forward(self, x):\n'
        '        return self.fc(self.drop(x.flatten(1)))\n'
        '\n'
        'class InferenceRunner:\n'
        '    def __init__(self, model, loader):\n'
        '        self.model = model\n'
        '        self.loader = loader\n'
        '        self.model.eval()\n'
        '\n'
        '    @torch.inference_mode()\n'
        '    def run(self):\n'
        '        correct = 0\n'
        '        for x, y in self.loader:\n'
        '            correct += (self.model(x).argmax(1) == y).sum().item()\n'
        '        return correct\n'
        '\n'
        'model = Net()\n'
        'opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n'
        'for epoch in range(5):\n'
        '    for x, y in train_loader:\n'
        '        opt.zero_grad()\n'
        '        F.cross_entropy(model(x), y).backward()\n'
        '        opt.step()\n'
        'InferenceRunner(model, val_loader).run()\n'
        ),
        # eval() as the first statement inside the evaluation loop
        (
        'import torch\n'
        'import torch.nn as nn\n'
        'import torch.nn.functional as F\n'
        '\n'
        'model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))\n'
        'opt = torch.optim.Adam(model.parameters(), lr=1e-3)\n'
        'for epoch in range(10):\n'
        '    model.train()\n'
        '    for x, y in train_loader:\n'
        '        opt.zero_grad()\n'
        '        F.cross_entropy(model(x), y).backward()\n'
        '        opt.step()\n'
        '    correct = 0\n'
        '    for x, y in val_loader:\n'
        '        model.eval()\n'
        '        with torch.no_grad():\n'
        '            correct += (model(x).argmax(1) == y).sum().item()\n'
        ),
        # an out-of-memory retry loop around a validate() that sets eval itself
        (
        'import torch\n'
        'import torch.nn as nn\n'
        'import torch.nn.functional as F\n'
        'from torch.utils.data import DataLoader\n'
        '\n'
        'model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))\n'
        'opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n'
        '\n'
        'def validate(model, loader):\n'
        '    model.eval()\n'
        '    correct = 0\n'
        '    with torch.no_grad():\n'
        '        for x, y in loader:\n'
        '            correct += (model(x).argmax(1) == y).sum().item()\n'
        '    return correct\n'
        '\n'
        'def validate_with_retry(model, batch_size):\n'
        '    while batch_size > 0:\n'
        '        try:\n'
        '            return validate(model, DataLoader(val_set, batch_size=batch_size))\n'
        '        except RuntimeError:\n'
        '            batch_size //= 2\n'
        '    return None\n'
        '\n'
        'for epoch in range(10):\n'
        '    model.train()\n'
        '    for x, y in train_loader:\n'
        '        opt.zero_grad()\n'
        '        F.cross_entropy(model(x), y).backward()\n'
        '        opt.step()\n'
        '    validate_with_retry(model, 256)\n'
        ),
        # an RL rollout under no_grad that feeds the next update (the output is the next input)
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class Policy(nn.Module):\n'
        '    def __init__(self, obs_dim, n_actions):\n'
        '        super().__init__()\n'
        '        self.body = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Dropout(0.1))\n'
        '        self.head = nn.Linear(64, n_actions)\n'
        '\n'
        '    def forward(self, obs):\n'
        '        return self.head(self.body(obs))\n'
        '\n'
        'policy = Policy(4, 2)\n'
        'optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4)\n'
        'for update in range(1000):\n'
        '    obs = env.reset()\n'
        '    buffer = []\n'
        '    with torch.no_grad():\n'
        '        for t in range(128):\n'
        '            logits = policy(obs)\n'
        '            action = torch.distributions.Categorical(logits=logits).sample()\n'
        '            next_obs, reward, done, _ = env.step(action)\n'
        '            buffer.append((obs, action, reward))\n'
        '            obs = next_obs\n'
        '    optimizer.zero_grad()\n'
        '    policy_loss(policy, buffer).backward()\n'
        '    optimizer.step()\n'
        ),
        # autoregressive sampling: `while True:` feeding generated tokens back
        (
        'import torch\n'
        'import torch.nn as nn\n'
        'import torch.nn.functional as F\n'
        '\n'
        'class CharModel(nn.Module):\n'
        '    def __init__(self, vocab, dim):\n'
        '        super().__init__()\n'
        '        self.emb = nn.Embedding(vocab, dim)\n'
        '        self.drop = nn.Dropout(0.2)\n'
        '        self.out = nn.Linear(dim, vocab)\n'
        '\n'
        '    def forward(self, idx):\n'
        '        return self.out(self.drop(self.emb(idx)))\n'
        '\n'
        'model = CharModel(65, 128)\n'
        'optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)\n'
        'for it in range(5000):\n'
        '    x, y = get_batch("train")\n'
        '    loss = F.cross_entropy(model(x).view(-1, 65), y.view(-1))\n'
        '    optimizer.zero_grad(set_to_none=True)\n'
        '    loss.backward()\n'
        '    optimizer.step()\n'
        'with torch.no_grad():\n'
        '    idx = torch.zeros((1, 1), dtype=torch.long)\n'
        '    while True:\n'
        '        logits = model(idx[:, -256:])\n'
        '        probs = F.softmax(logits[:, -1, :], dim=-1)\n'
        '        idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)\n'
        '        if idx.size(1) > 500:\n'
        '            break\n'
        ),
        # the same generate() validation after model.eval()
        "import torch\n"
        "def validate(model, tok, loader):\n    model.eval()\n    hits = 0\n    with torch.no_grad():\n"
        "        for batch in val_loader:\n"
        "            out = model.generate(batch['pixel_values'])\n"
        "            hits += sum(a == b for a, b in zip(tok.batch_decode(out), batch['text']))\n    return hits\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=5e-5)\n"
        "for epoch in range(3):\n    model.train()\n    for batch in train_loader:\n"
        "        model(**batch).loss.backward()\n        opt.step()\n        opt.zero_grad()\n"
        "    validate(model, tok, val_loader)\n",
        # the look-alike: train() restored after the evaluation loop
        "import torch\nimport torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Linear(16, 2))\n"
        "opt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
        "for epoch in range(5):\n    for x, y in train_loader:\n"
        "        opt.zero_grad()\n        crit(model(x), y).backward()\n        opt.step()\n"
        "    model.eval()\n    with torch.no_grad():\n        for x, y in val_loader:\n"
        "            correct += (model(x).argmax(1) == y).sum().item()\n    model.train()\n",
        # modules handed in from outside are not known to be mode-free: eval() is called
        "import torch\nfrom torch import nn\n"
        "def fit(encoders, head, loader, val_loader):\n    model = nn.Sequential(*encoders, head)\n"
        "    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)\n    for epoch in range(3):\n"
        "        model.train()\n        for x, y in loader:\n            opt.zero_grad()\n"
        "            nn.functional.cross_entropy(model(x), y).backward()\n            opt.step()\n"
        "        model.eval()\n        with torch.no_grad():\n"
        "            acc = sum((model(x).argmax(1) == y).sum().item() for x, y in val_loader)\n",
    )
    INVALID = (
        # an inference helper with no loop: no_grad, but the Dropout model stays in train mode
        "import torch\nimport torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.fc = nn.Linear(10, 2)\n        self.drop = nn.Dropout(0.5)\n"
        "    def forward(self, x):\n        return self.fc(self.drop(x))\n"
        "model = Net()\nmodel.load_state_dict(torch.load('model.pt'))\n"
        "@torch.inference_mode()\ndef predict(model, x):\n"
        "    return model(x).argmax(1)  # expect: RC701\n"
        "print(predict(model, torch.randn(4, 10)))\n",
        "import torch\nmodel = Net()\nopt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n"
        "for epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    with torch.no_grad():\n"
        "        for x, y in val_loader:  # expect: RC701\n            acc += (model(x).argmax(1) == y).sum().item()\n",
        "import torch\n"
        "def evaluate(net, loader):\n    total = 0\n    for x, y in loader:  # expect: RC701\n"
        "        total += (net(x).argmax(1) == y).sum().item()\n    return total\n"
        "def train_one_epoch(model, loader, opt):\n    model.train()\n    for x, y in loader:\n"
        "        opt.zero_grad()\n        crit(model(x), y).backward()\n        opt.step()\n"
        "model = Net()\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
        "for epoch in range(5):\n    train_one_epoch(model, train_loader, opt)\n    evaluate(model, val_loader)\n",
        # a seq2seq model decoded with generate(): generate() does not switch to eval mode
        "import torch\n"
        "def validate(model, tok, loader):\n    hits = 0\n    with torch.no_grad():\n"
        "        for batch in val_loader:  # expect: RC701\n"
        "            out = model.generate(batch['pixel_values'])\n"
        "            hits += sum(a == b for a, b in zip(tok.batch_decode(out), batch['text']))\n    return hits\n"
        "opt = torch.optim.AdamW(model.parameters(), lr=5e-5)\n"
        "for epoch in range(3):\n    model.train()\n    for batch in train_loader:\n"
        "        model(**batch).loss.backward()\n        opt.step()\n        opt.zero_grad()\n"
        "    validate(model, tok, val_loader)\n",
        # eval() before the loop, undone by a train() in its body
        "import torch\nimport torch.nn as nn\n"
        "model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.3), nn.Linear(16, 2))\n"
        "opt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
        "for epoch in range(5):\n    model.train()\n    for x, y in train_loader:\n"
        "        opt.zero_grad()\n        crit(model(x), y).backward()\n        opt.step()\n"
        "    model.eval()\n    with torch.no_grad():\n        for x, y in val_loader:\n"
        "            model.train()  # expect: RC701\n"
        "            correct += (model(x).argmax(1) == y).sum().item()\n",
    )

    def check(self, ctx: Context) -> None:
        ev = analysis(ctx.program)
        _check_prediction_helpers(ctx, ev)
        reported: set[int] = set()
        for el in ev.eval_loops:
            if id(el.node.loop) in reported:
                continue
            if el.reasons == ("no_grad",) and _over_training_data(el):
                continue  # precise-BN style recalibration: train mode over train data on purpose
            for model in el.models:
                keys = [model, *ev.owner_keys(el, model)]
                inside = ev.train_at_loop_start(el, keys)
                if inside is not None and ev.mode_matters(model, in_eval=True):
                    # eval() before the loop is undone by a train() in its body
                    reported.add(id(el.node.loop))
                    ctx.report(inside.event.node, (
                        f"`{ctx.code(inside.event.node)}` inside the evaluation loop puts {model} back "
                        "in training mode before its forward: Dropout stays on and BatchNorm uses "
                        "batch statistics, so the metric is wrong; remove it and call train() after "
                        "the loop (RC701, runtime twin RT111)"))
                    break
                if not any(self._left_in_train(ev, el, k) for k in keys) or \
                        any(self._set_to_eval(ev, el, k) for k in keys[1:]) or \
                        ev.eval_at_loop_start(el, keys) or ev.eval_in_constructor(el, keys):
                    continue
                # no Dropout/BatchNorm: both modes compute the same thing today
                matters = ev.mode_matters(model, in_eval=True)
                reported.add(id(el.node.loop))
                loop = el.node.loop
                name = self._local_name(ev, el, model)
                fix = None
                if name is not None:
                    tr = insert_before_transform(loop.function.node, loop.node, f"{name}.eval()\n",
                                                 frozenset(NO_GRAD), ctx.program.imports.resolve)
                    full = _restoring_train_mode(ctx, tr) if tr is not None else None
                    if full is not None:
                        fix = FixSpec("safe", f"call {name}.eval() before the evaluation loop (and "
                                      f"{name}.train() where training follows)", transform=full)
                shown = name or model
                where = " over held-out data" if el.split else ""
                anchor = loop.node.iter if loop.iter is not None else loop.node.test
                site = _call_site_here(ctx, el)
                if site is not None:
                    # the loop is in a helper of another module (utils.evaluate): report the call
                    # that reaches it from this file, where the model is passed in; a name local
                    # to the helper (its own criterion) is not this file's to judge
                    arg = _argument_for(site, loop.function, model)
                    if arg is not None and ev.mode_matters(arg):
                        ctx.report(site, (
                            f"`{ctx.code(site)}` runs an evaluation loop{where} (in "
                            f"{loop.function.name}(), another module) with {arg} in training mode: "
                            f"Dropout stays on and BatchNorm uses batch statistics, so the metric is "
                            f"wrong; call {arg}.eval() before it, or in {loop.function.name}() "
                            "(RC701, runtime twin RT111)"))
                    break
                if matters:
                    ctx.report(anchor, (
                        f"evaluation loop{where} runs with {shown} in training mode: Dropout stays on "
                        f"and BatchNorm uses batch statistics, so the metric is wrong; call "
                        f"{shown}.eval() before it (RC701, runtime twin RT111)"), fix=fix)
                else:
                    ctx.report(anchor, (
                        f"evaluation loop{where} runs with {shown} in training mode: no effect today "
                        f"({shown} has no Dropout/BatchNorm), but the metric becomes wrong when one is "
                        f"added; call {shown}.eval() before it (RC701)"), fix=fix,
                        severity=Severity.INFO)
                break

    @staticmethod
    def _set_to_eval(ev, el, model) -> bool:
        """Every way of reaching the loop passes `model.eval()` (or an unknown mode)."""
        scs = ev.scenarios(el.node, model)
        return bool(scs) and all(sc.modes() & {"eval", "unknown"} for sc in scs)

    @staticmethod
    def _left_in_train(ev, el, model) -> bool:
        """Some way of reaching the loop leaves `model` in training mode."""
        for sc in ev.scenarios(el.node, model):
            modes = sc.modes()
            if "eval" in modes or "unknown" in modes:
                continue
            if "train" in modes or ("default" in modes and ev.default_is_train(el.node.root, model)):
                return True
        return False

    @staticmethod
    def _local_name(ev, el, model):
        for n in [el.forward, *el.node.walk()]:
            if n.event is None or n.chain != el.node.chain:
                continue
            if ev.is_model_call(n) == model:
                text = forward_text(n.event)
                return text if text and "(" not in text else None
        return None


_PREDICT_FN = re.compile(r"^(run_|do_|make_|get_)?(predict|inference|infer|classify|forecast)", re.I)


def _check_prediction_helpers(ctx: Context, ev) -> None:
    """A `@torch.no_grad()` / `@torch.inference_mode()` prediction helper with no loop of its
    own (`def predict(model, x): return model(x).argmax(1)`) reached with the model in
    training mode. Helpers with loops are evaluation loops, which the main check covers."""
    seen: set[int] = set()
    for n in ev._all_nodes:
        e = n.event
        if e is None or id(e.node) in seen or not n.grad_free:
            continue
        fn = e.function
        if not _PREDICT_FN.search(fn.name) or not _own_no_grad(ev, fn):
            continue  # grad-free only through a caller: a sampling or self-conditioning step
        model = ev.is_model_call(n)
        if not model or not ev.mode_matters(model, in_eval=True):
            continue
        inner = next((a for a in n.ancestors() if a.loop is not None), None)
        if inner is not None and inner.loop.function is fn:
            continue
        bad = False
        for sc in ev.scenarios(n, model):
            modes = sc.modes()
            if "eval" in modes or "unknown" in modes:
                continue
            if "train" in modes or ("default" in modes and ev.default_is_train(n.root, model)):
                bad = True
                break
        if not bad:
            continue
        seen.add(id(e.node))
        name = forward_text(e) or model
        ctx.report(e.node, (
            f"{fn.name}() runs {name} under no_grad/inference_mode but in training mode: Dropout stays "
            f"on and BatchNorm uses batch statistics, so predictions are random and wrong; call "
            f"{name.split('(')[0]}.eval() first (RC701, runtime twin RT111)"))


def _own_no_grad(ev, fn) -> bool:
    """The helper itself is decorated with no_grad/inference_mode."""
    from recipecheck.program.evaluation import _decorator_withs

    return any(w in NO_GRAD for w in _decorator_withs(ev.program, fn))


def _argument_for(call, fn, model: str) -> str | None:
    """The name this file passes for `fn`'s parameter `model` at `call` (a direct call of fn)."""
    from recipecheck.program.nodes import bind_arguments

    if "." in model or model not in fn.params or not isinstance(call, cst.Call):
        return None
    for name, value in bind_arguments(call, fn.params, fn.cls is not None):
        if name == model:
            return dotted_name(value)
    return None


def _call_site_here(ctx: Context, el):
    """For an evaluation loop in a function of another module: the last call of the chain that
    reaches it from a function of this file (None when the loop is this file's own)."""
    f = el.node.loop.function
    own = {id(fn) for fn in ctx.program.functions.values()}
    if id(f) in own:
        return None
    for call in reversed(el.node.chain):
        if id(call.function) in own:
            return call.node
    return None
