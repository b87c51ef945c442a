import re

import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.nodes import literal_number, walk
from recipecheck.rule import Context, Rule

RNN_LAYERS = {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"}
_CLIP_KEYWORDS = {"gradient_clip_val", "max_grad_norm", "clip_grad", "grad_clip", "clip_grad_norm",
                  "clipnorm", "clip_value", "max_norm"}


def _is_rnn(q: str | None) -> bool:
    return bool(q) and q.startswith("torch.nn") and q.rsplit(".", 1)[-1] in RNN_LAYERS


_SEQ_NAME = re.compile(r"^(bptt|seq_?len|seq_?length|sequence_?length|max_?len|max_?length|"
                       r"max_seq_len|block_?size|num_?steps|n_?steps|time_?steps|window|context_?len)$",
                       re.I)
_STATE_NAME = re.compile(r"^(hidden|hiddens|h|c|hx|cx|h0|c0|state|states|hc|memory)$", re.I)
_LOSS_CALL = re.compile(r"(loss|crit|cross_entropy|nll)", re.I)


def _sequence_length(p) -> float | None:
    """The longest literal sequence length the script sets (`bptt = 35`, `--seq_len 200`,
    `block_size = 256`), None when none is written."""
    from recipecheck.program.hparams import _argparse_defaults
    from recipecheck.program.values import value_of

    exprs = [(a.function, a.value) for a in p.assignments
             if a.augmented is None and a.value is not None and _SEQ_NAME.match(a.target.rsplit(".", 1)[-1])]
    for dest, defaults in _argparse_defaults(p).items():
        if _SEQ_NAME.match(dest):
            exprs += [(None, d) for d in defaults if d is not None]
    known = [x.value for f, e in exprs for x in value_of(p, f, e).possibilities
             if isinstance(x.value, (int, float)) and not isinstance(x.value, bool)]
    return max(known) if known else None


def truncated_bptt(p) -> bool:
    """The hidden state is carried across batches and detached (`repackage_hidden(hidden)`,
    `h = h.detach()`): the recurrence runs over the whole corpus."""
    for cs in p.calls:
        leaf = (cs.dotted or "").rsplit(".", 1)[-1]
        if leaf in ("repackage_hidden", "detach_hidden"):
            return True
        f = cs.node.func
        if isinstance(f, cst.Attribute) and f.attr.value in ("detach", "detach_") and \
                isinstance(f.value, cst.Name) and _STATE_NAME.match(f.value.value):
            return True
    return False


def per_step_loss(p) -> bool:
    """The output is flattened over the time steps into the loss (`output.view(-1, ntokens)`):
    a language model, a tagger or a seq2seq decoder, not a classifier of whole sequences."""
    for cs in p.calls:
        if cs.dotted and _LOSS_CALL.search(cs.dotted.rsplit(".", 1)[-1]):
            for a in cs.node.args:
                for n in walk(a.value):
                    if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and \
                            n.func.attr.value in ("view", "reshape") and len(n.args) == 2 and \
                            literal_number(n.args[0].value) == -1:
                        return True
    return False


def clips_gradients(p) -> bool:
    """Anything in the file that clips or bounds gradients."""
    if any(ev.kind == "clip" for f in p.functions.values() for ev in f.events):
        return True
    for cs in p.calls:
        d = (cs.dotted or "").lower()
        leaf = d.rsplit(".", 1)[-1]
        if "clip_grad" in leaf or "clip_gradients" in leaf or leaf in ("clip_grad_norm_", "clip_grad_value_"):
            return True
        if leaf in ("clamp_", "clamp", "clip_") and ".grad" in d:
            return True
        if leaf == "register_hook" or leaf == "register_full_backward_hook":
            return True
        if any(a.keyword is not None and a.keyword.value in _CLIP_KEYWORDS for a in cs.node.args):
            return True
    return False


class RnnWithoutGradClipping(Rule):
    """
    ## What it does
    Reports a file that builds a recurrent layer (`nn.RNN`, `nn.LSTM`, `nn.GRU` or their
    cells) and trains (a loop reaches `backward()`) without any gradient clipping: no
    `clip_grad_norm_` / `clip_grad_value_` (torch, Accelerate, Fabric), no gradient hook or
    `.grad.clamp_()`, no `gradient_clip_val=` / `max_grad_norm=` handed to a trainer.

    ## Why is this bad?
    Backpropagation through time multiplies the gradient by the recurrent Jacobian once per
    time step: occasional gradient explosions are the norm, and one exploding step throws the
    weights far away (loss spikes, NaN). Clipping the global gradient norm (0.25 to 5 in the
    word-language-model and seq2seq recipes) removes the spikes at almost no cost.

    Measured (`recipecheck validate RC605`, seeds 0-4): largest loss after warm-up (1e6:
    non-finite): 1.00e+06 [1.00e+06, 1.00e+06] with no clipping vs 0.363 [0.278, 0.485] with
    clip_grad_norm_(1.0) (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    Reported as a warning for language-model style training: truncated BPTT (the hidden state
    carried across batches and detached) or a per-time-step loss (`output.view(-1, ntokens)`)
    over sequences of 100 steps or more (or of unknown length). Short sequences, classifiers of
    whole sequences and LBFGS (which bounds its steps by a line search) are reported at `info`.
    Clipping done in another file is not seen; an RNN built but frozen is still reported.

    ## Example
    ```python
    loss.backward()
    optimizer.step()
    ```

    ## Use instead
    ```python
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.25)
    optimizer.step()
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Pascanu, Mikolov, Bengio (2013), "On the difficulty of training recurrent neural networks".
    - PyTorch examples, word_language_model (`--clip 0.25`).
    - Runtime twin: RT108 vanishing-or-exploding-gradients.
    """

    CODE = "RC605"
    NAME = "rnn-without-grad-clipping"
    SEVERITY = Severity.WARNING
    MESSAGE = "an RNN/LSTM/GRU is trained with no gradient clipping"
    STATIC_TWIN = "RT108"
    VALID = (
        "import torch\nimport torch.nn as nn\nrnn = nn.LSTM(128, 256, 2)\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(rnn(x)[0], y).backward()\n"
        "    nn.utils.clip_grad_norm_(rnn.parameters(), 0.25)\n    opt.step()\n",
        "import torch.nn as nn\nlstm = nn.LSTM(128, 256)\n",
        "import torch\nimport torch.nn as nn\nnet = nn.Sequential(nn.Linear(4, 4))\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(net(x), y).backward()\n    opt.step()\n",
    )
    INVALID = (
        # word-language-model shape: truncated BPTT without clipping
        (
        'import torch\n'
        'import torch.nn as nn\n'
        '\n'
        'class RNNModel(nn.Module):\n'
        '    def __init__(self, ntoken, ninp, nhid, nlayers):\n'
        '        super().__init__()\n'
        '        self.encoder = nn.Embedding(ntoken, ninp)\n'
        '        self.rnn = nn.LSTM(ninp, nhid, nlayers)  # expect: RC605\n'
        '        self.decoder = nn.Linear(nhid, ntoken)\n'
        '\n'
        '    def forward(self, input, hidden):\n'
        '        output, hidden = self.rnn(self.encoder(input), hidden)\n'
        '        return self.decoder(output), hidden\n'
        '\n'
        'def repackage_hidden(h):\n'
        '    if isinstance(h, torch.Tensor):\n'
        '        return h.detach()\n'
        '    return tuple(repackage_hidden(v) for v in h)\n'
        '\n'
        'model = RNNModel(10000, 200, 200, 2)\n'
        'criterion = nn.NLLLoss()\n'
        'optimizer = torch.optim.SGD(model.parameters(), lr=20)\n'
        'bptt = 35\n'
        'for epoch in range(40):\n'
        '    hidden = model.init_hidden(20)\n'
        '    for i in range(0, train_data.size(0) - 1, bptt):\n'
        '        data, targets = get_batch(train_data, i)\n'
        '        hidden = repackage_hidden(hidden)\n'
        '        optimizer.zero_grad()\n'
        '        output, hidden = model(data, hidden)\n'
        '        loss = criterion(output.view(-1, 10000), targets)\n'
        '        loss.backward()\n'
        '        optimizer.step()\n'
        ),
        "import torch\nimport torch.nn as nn\nrnn = nn.GRU(128, 256, 2)  # expect: RC605\n"
        "for x, y in loader:\n    opt.zero_grad()\n    crit(rnn(x)[0], y).backward()\n    opt.step()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        rnns = [cs for cs in p.calls if _is_rnn(cs.qualname)]
        if not rnns:
            return
        trains = any(ev.kind == "backward" for f in p.functions.values() for ev in f.events)
        if not trains or clips_gradients(p):
            return
        cs = rnns[0]
        lbfgs = any(c.qualname == "torch.optim.LBFGS" for c in p.calls)
        seq = _sequence_length(p)
        long_lm = truncated_bptt(p) or (per_step_loss(p) and (seq is None or seq >= 100))
        msg = (f"{ctx.code(cs.node.func)} is trained without gradient clipping: gradients through "
               "time explode now and then and one spike can wreck the weights (NaN, loss jumps); "
               "call torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm) between "
               "backward() and step() (RC605, runtime twin RT108)")
        if long_lm and not lbfgs:
            ctx.report(cs.node, msg)
            return
        why = ("LBFGS bounds its own steps by a line search" if lbfgs else
               f"sequences of {seq:g} steps are short" if seq is not None and seq < 100 else
               "the recurrence is not trained per time step over long sequences")
        ctx.report(cs.node, f"{msg[:-1]}; less likely here: {why})", severity=Severity.INFO)
