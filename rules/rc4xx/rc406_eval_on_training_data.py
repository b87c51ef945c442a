import re

import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.data import _literal, call_arg, data_model, is_data_name, is_eval_name, is_train_name
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule

_EVAL_FN = re.compile(r"eval|valid|test|score|accuracy|acc$|metric|predict|inference", re.I)
_NOT_EVAL_FN = re.compile(r"train|fit|cross_val|print|log|append|format|save|plot|str|round|float|item", re.I)


class EvalOnTrainingData(Rule):
    """
    ## What it does
    Flags a "validation" or "test" measurement that is computed on the training data:
    a loader named `val_loader`/`test_loader` built over the training dataset
    (`val_loader = DataLoader(train_dataset, ...)`, or over the very dataset object the
    training loader uses), a torchvision dataset assigned to a test name with `train=True`,
    or a metric named `val_*`/`test_*` computed by an evaluation function from
    the training loader or arrays (`val_acc = evaluate(model, train_loader)`,
    `test_score = accuracy(model, X_train, y_train)`); and a `val_loader` received from
    another module's factory that builds it over the same data as the training loader.

    ## Why is this bad?
    The model has seen these examples: the "validation" score measures memorization, not
    generalization. Overfitting is invisible, and early stopping, checkpoint selection and
    hyperparameter search driven by that number pick the most overfitted model.

    Measured (`recipecheck validate RC406`, seeds 0-4): reported accuracy minus accuracy on 900
    fresh examples: 0.0472 [0.0294, 0.0607] with evaluated on the training set vs 0.005
    [-0.0175, 0.0274] with evaluated on a held-out split (mean [min, max]); the claim held on 0
    of 5 seeds.

    ## Known problems
    Deliberately measuring training accuracy is fine and is not flagged when the result or the
    loader says so (`train_acc`, `train_eval_loader`). Cross-validation helpers
    (`cross_val_score(model, X_train, y_train)`) are skipped. Names decide the roles: a loader
    called `loader2` is not recognized. A validation loader over the training dataset with a
    `sampler=` (the `SubsetRandomSampler(valid_idx)` idiom) is assumed to select held-out
    indices; for the same reason a *validation* dataset loaded with `train=True` is
    flagged only when it is used whole: fed to a DataLoader without a sampler and never passed
    to `Subset`/`random_split` or another function that may carve it. Batches pulled by hand
    (`x_val, y_val = next(iter(train_loader))`) count when the names say validation/test.

    ## Example
    ```python
    val_loader = DataLoader(train_dataset, batch_size=256)
    ```

    ## Use instead
    ```python
    train_dataset, val_dataset = random_split(full_dataset, [0.9, 0.1])
    val_loader = DataLoader(val_dataset, batch_size=256)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Goodfellow, Bengio and Courville, *Deep Learning*, section 5.3 (validation sets).
    - CS231n notes, "Hyperparameter optimization: evaluate on the validation set".
    """

    CODE = "RC406"
    NAME = "eval-on-training-data"
    SEVERITY = Severity.WARNING
    MESSAGE = "the validation/test metric is computed on the training data"
    VALID = (
        "from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_ds, batch_size=64, shuffle=True)\n"
        "val_loader = DataLoader(val_ds, batch_size=256)\nval_loss, val_acc = evaluate(model, val_loader)\n"
        "train_acc = evaluate(model, train_loader)\n",
        "from torch.utils.data import DataLoader\ntrain_eval_loader = DataLoader(train_ds, batch_size=256)\n",
        "from sklearn.model_selection import cross_val_score\nval_scores = cross_val_score(clf, X_train, y_train, cv=5)\n",
        "from torchvision import datasets\ntest_set = datasets.MNIST('data', train=False, download=True)\n",
        # the held-out part selected by a sampler over the training dataset
        "from torch.utils.data import DataLoader, SubsetRandomSampler\n"
        "train_loader = DataLoader(train_dataset, batch_size=64, sampler=SubsetRandomSampler(train_idx))\n"
        "valid_loader = DataLoader(train_dataset, batch_size=64, sampler=SubsetRandomSampler(valid_idx))\n",
        # a validation set loaded with train=True, then carved by a sampler or a Subset
        "from torch.utils.data import DataLoader, Subset\nfrom torchvision import datasets\n"
        "valid_set = datasets.CIFAR10('data', train=True, transform=test_tf)\n"
        "valid_loader = DataLoader(valid_set, batch_size=64, sampler=valid_sampler)\n"
        "val_set = datasets.MNIST('data', train=True, transform=tf)\n"
        "val_set = Subset(val_set, val_idx)\n",
        # a training batch for a sanity check is not a validation metric
        "x, y = next(iter(train_loader))\nprint(model(x).shape)\n",
    )
    INVALID = (
        "from torch.utils.data import DataLoader\ntrain_loader = DataLoader(train_dataset, batch_size=64, shuffle=True)\n"
        "val_loader = DataLoader(train_dataset, batch_size=256)  # expect: RC406\n",
        "val_loss, val_acc = evaluate(model, train_loader, criterion)  # expect: RC406\n",
        "from torchvision import datasets\ntest_set = datasets.CIFAR10('data', train=True, download=True)  # expect: RC406\n",
        "test_accuracy = accuracy(model, X_train, y_train)  # expect: RC406\n",
        # a validation set loaded from the training split and used whole
        "from torch.utils.data import DataLoader\nfrom torchvision import datasets\n"
        "val_set = datasets.MNIST('data', train=True, transform=tf)  # expect: RC406\n"
        "val_loader = DataLoader(val_set, batch_size=256)\n",
        # evaluation on a batch pulled by hand from the training loader
        "import torch\nwith torch.no_grad():\n"
        "    x_val, y_val = next(iter(train_loader))  # expect: RC406\n"
        "    acc = (model(x_val).argmax(1) == y_val).float().mean()\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        dm = data_model(p)
        train_loader_nodes = {id(c.node) for c, _ in dm.train_loaders}
        train_datasets = set()
        for c, _ in dm.train_loaders:
            ds = dm.dataset_of(c)
            for d in (p.evaluate(c.function, ds) if ds is not None else []):
                if id(d.node) in dm.targets:  # an object bound once, not a factory's return value
                    train_datasets.add(id(d.node))
            if ds is not None and dotted_name(ds):
                train_datasets.add(("name", c.function.key, dotted_name(ds)))
        _check_foreign_factory(ctx, p, dm, train_datasets)
        # loaders named val/test built over the training data
        for c in p.constructions("loader"):
            targets = dm.targets.get(id(c.node), []) or ([c.target] if c.target else [])
            evals = [t for t in targets if is_eval_name(t)]
            if not evals or id(c.node) in train_loader_nodes:
                continue
            ds = dm.dataset_of(c)
            if ds is None:
                continue
            if any(_literal(c.arg(k, i)) is not None for k, i in (("sampler", 3), ("batch_sampler", 4))
                   if c.arg(k, i) is not None):
                continue  # SubsetRandomSampler(valid_idx) picks the held-out part
            d = dotted_name(ds)
            same = (d is not None and ("name", c.function.key, d) in train_datasets) or \
                any(id(o.node) in train_datasets for o in p.evaluate(c.function, ds))
            if (d is not None and is_train_name(d)) or same:
                ctx.report(ds, (
                    f"{evals[0]} is built over the training data ({ctx.code(ds)}): its 'validation' "
                    "score measures memorization, so overfitting is invisible and model selection "
                    "picks the most overfitted model; build it over a held-out split (RC406)"))
        # a dataset assigned to a val/test name but loaded with train=True
        for cs in p.calls:
            call = cs.node
            tr = call_arg(call, "train", None)
            if tr is None or _literal(tr) is not True:
                continue
            names = dm.targets.get(id(call), [])
            if not any(is_eval_name(t) for t in names):
                for outer in p.calls:
                    if outer.function is cs.function and any(a.value is call for a in outer.node.args):
                        names = dm.targets.get(id(outer.node), [])
                        break
            # a *validation* set is often carved out of train=True with a sampler or Subset: only
            # a test set loaded from the training split is certainly wrong
            evals = [t for t in names if is_eval_name(t) and "test" in t.lower()]
            if evals:
                ctx.report(call, (
                    f"{evals[0]} loads the training split (train=True): the held-out score is "
                    "computed on examples the model was trained on; use train=False (RC406)"))
        _validation_from_training_split(ctx, p, dm)
        _batches_pulled_from_training_loader(ctx, p, dm, train_loader_nodes)
        # val_acc = evaluate(model, train_loader)
        for cs in p.calls:
            call = cs.node
            targets = dm.targets.get(id(call), [])
            if not any(is_eval_name(t) for t in targets) or any(is_train_name(t) for t in targets):
                continue
            fname = (cs.dotted or "").rsplit(".", 1)[-1]
            if not fname or not _EVAL_FN.search(fname) or _NOT_EVAL_FN.search(fname):
                continue
            train_arg = None
            for a in call.args:
                d = dotted_name(a.value)
                if d is not None and is_eval_name(d) and is_data_name(d):
                    train_arg = None
                    break
                if train_arg is not None:
                    continue
                if d is not None and is_train_name(d) and is_data_name(d):
                    train_arg = a.value
                elif isinstance(a.value, (cst.Name, cst.Attribute)) and any(
                        id(o.node) in train_loader_nodes for o in p.evaluate(cs.function, a.value)):
                    train_arg = a.value
            if train_arg is not None:
                ev = next(t for t in targets if is_eval_name(t))
                ctx.report(train_arg, (
                    f"{ev} is computed on the training data ({ctx.code(train_arg)}): the score "
                    "measures memorization, not generalization; evaluate on the validation/test "
                    "split (RC406)"))


def _validation_from_training_split(ctx: Context, p, dm) -> None:
    """`val_set = MNIST(..., train=True)` used whole by a DataLoader (no sampler, no Subset)."""
    for cs in p.calls:
        call = cs.node
        tr = call_arg(call, "train", None)
        if tr is None or _literal(tr) is not True:
            continue
        names = [t for t in dm.targets.get(id(call), []) if is_eval_name(t) and "test" not in t.lower()]
        if not names:
            continue
        name = names[0]
        loaders, other = [], False
        for use in p.calls:
            if use.node is call:
                continue
            if not any(dotted_name(a.value) == name for a in use.node.args):
                continue
            leaf = (use.dotted or "").rsplit(".", 1)[-1]
            if use.qualname and use.qualname.endswith("DataLoader"):
                loaders.append(use.node)
            elif leaf not in ("len", "print"):
                other = True  # Subset(val_set, idx), random_split, a helper: may select held-out part
        if other or any(a.target == name and a.value is not call for a in p.assignments):
            continue
        if any(a.target.startswith(name + ".") for a in p.assignments):
            continue  # val_set.data = val_set.data[idx]
        if not loaders or any(call_arg(ld, "sampler", 2) is not None or call_arg(ld, "batch_sampler", 3)
                              is not None for ld in loaders):
            continue
        ctx.report(call, (
            f"{name} loads the training split (train=True) and is used whole for validation: the "
            "model is validated on examples it trains on, so overfitting is invisible; carve a "
            "held-out part (random_split / Subset) or use train=False (RC406)"))


def _batches_pulled_from_training_loader(ctx: Context, p, dm, train_loader_nodes) -> None:
    """`x_val, y_val = next(iter(train_loader))`: held-out names for a training batch."""
    for a in p.assignments:
        v = a.value
        while v is not None and not isinstance(v, cst.CSTNode):
            v = getattr(v, "value", None)  # an unpacked element: the whole right-hand side
        if not isinstance(v, cst.Call) or dotted_name(v.func) != "next" or not v.args:
            continue
        inner = v.args[0].value
        if not isinstance(inner, cst.Call) or dotted_name(inner.func) != "iter" or not inner.args:
            continue
        src = inner.args[0].value
        d = dotted_name(src)
        from_train = (d is not None and is_train_name(d)) or any(
            id(o.node) in train_loader_nodes for o in p.evaluate(a.function, src))
        if not from_train or not is_eval_name(a.target) or is_train_name(a.target):
            continue
        ctx.report(a.node, (
            f"{a.target} is a batch pulled from the training loader ({ctx.code(src)}): a metric on it "
            "measures memorization, not generalization; draw it from the validation loader (RC406)"))


def _check_foreign_factory(ctx: Context, p, dm, train_datasets) -> None:
    """`train_loader, val_loader = make_loaders(ds)` where the factory of another module builds
    the validation loader over the same dataset as the training loader: reported here, at the
    assignment that receives it (the factory's module cannot see it is used for validation)."""
    own = {id(fn) for fn in p.functions.values()}
    for a in p.assignments:
        if id(a.function) not in own or a.augmented is not None or not is_eval_name(a.target) or \
                is_train_name(a.target) or "." in a.target:
            continue
        for o in p.evaluate_dotted(a.function, a.target):
            if o.role != "loader" or id(o.function) in own:
                continue
            ds = dm.dataset_of(o)
            d = dotted_name(ds) if ds is not None else None
            if d is None or ("name", o.function.key, d) not in train_datasets:
                continue
            prog = o.function.program or p
            same = [c for c in prog.constructions("loader") if c.function is o.function and
                    (lambda x: dotted_name(x) if x is not None else None)(dm.dataset_of(c)) == d]
            if len(same) < 2:
                continue  # one loader per call (`create_dataloader(text[:n])`): its data is the call's argument
            if any(o.arg(k, i) is not None for k, i in (("sampler", 3), ("batch_sampler", 4))):
                continue  # a sampler over held-out indices
            ctx.report(a.node, (
                f"`{a.target}` comes from {o.function.name}() (another module), which builds it over "
                f"the same data (`{d}`) as the training loader: its 'validation' score measures "
                "memorization, so overfitting is invisible and model selection picks the most "
                "overfitted model; build it over a held-out split (RC406)"))
            break
