import re

import libcst as cst

from recipecheck.program.nodes import iter_children, statements

from recipecheck.finding import Severity
from recipecheck.program.evaluation import analysis, split_kind
from recipecheck.program.imports import dotted_name
from recipecheck.program.model import _Unpacked
from recipecheck.rule import Context, Rule

_BEST = re.compile(r"(^|_)best(_|$)|^is_best$", re.I)
_EARLY_STOP = re.compile(r"early_?stop|stopper|early_?stopping", re.I)


def _names(expr: cst.CSTNode) -> list[str]:
    out = []
    stack = [expr]
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.Name, cst.Attribute)):
            d = dotted_name(n)
            if d is not None:
                out.append(d)
                continue
        if isinstance(n, cst.SimpleString):
            out.append(str(n.evaluated_value))
            continue
        if isinstance(n, cst.Call):
            # what a call is given says which data it measures, not the function's name
            stack.extend(a.value for a in n.args)
            if isinstance(n.func, cst.Attribute):
                stack.append(n.func.value)
            continue
        stack.extend(iter_children(n))
    return out


def _ifs(node: cst.CSTNode):
    """If statements in a loop body (not inside nested functions or classes)."""
    return (n for n in statements(node) if type(n) is cst.If)

def _selects(body: cst.CSTNode) -> bool:
    """The branch saves a checkpoint, keeps a state dict, or stops training."""
    stack = [body]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Break):
            return True
        if isinstance(n, cst.Call):
            d = dotted_name(n.func) or ""
            leaf = d.rsplit(".", 1)[-1] if d else (n.func.attr.value if isinstance(n.func, cst.Attribute) else "")
            if leaf in ("save", "state_dict", "save_checkpoint", "save_model", "save_pretrained", "deepcopy"):
                return True
        stack.extend(iter_children(n))
    return False


def _inside(node: cst.CSTNode, container: cst.CSTNode) -> bool:
    stack = [container]
    while stack:
        n = stack.pop()
        if n is node:
            return True
        stack.extend(iter_children(n))
    return False


class ModelSelectionOnTestSet(Rule):
    """
    ## What it does
    Flags model selection driven by the test set: a "best" checkpoint or score updated from a
    test metric (`best_acc = test_acc`, `is_best = acc > best_acc` where `acc` comes from
    `evaluate(model, test_loader)`, or inside a `test()` that iterates the test loader), an
    `if test_loss < ...:` in the training loop that saves a checkpoint or breaks, early
    stopping fed a test metric (`early_stopping(test_loss, model)`),
    `ReduceLROnPlateau.step(test_loss)`, and a validation set or loader that is the test data
    (`val_set = test_set`, `val_loader = DataLoader(test_dataset)`) in a function that selects
    or stops on its metric, or the test data passed as such a function's validation parameter
    (`fit(model, train_loader, test_loader)` with `def fit(model, train_loader, val_loader)`,
    here or in another module). An `eval_*` result counts as a test metric when it is computed
    on test data only (`eval_loss, eval_acc = eval_model(model, test_loader)`).

    ## Why is this bad?
    Choosing the epoch, the checkpoint or the LR schedule by test performance fits them to the
    test set: the reported test score is optimistically biased and no longer estimates
    performance on new data. Selection belongs to a validation split; the test set is looked at
    once, at the end.

    Measured (`recipecheck validate RC704`, seeds 0-4): reported test accuracy minus the
    selected checkpoint's accuracy on 1500 fresh examples: 0.0324 [-0.0157, 0.123] with select
    and report on test vs -0.0162 [-0.0523, 0.0359] with select on validation, report test (mean
    [min, max]); the claim held on 3 of 5 seeds.

    ## Known problems
    A best metric read back from a checkpoint (`best_acc = ckpt["best_acc"]`) is resuming, not
    selection, and is not reported.
    Metrics are recognized by names (`test_acc`, `X_test`, `test_loader`) and by the loader the
    computing call or loop gets; a test metric renamed on the way (`score = metrics[2]`) is not
    followed. Scripts that call their validation split "test" are reported: rename the split.

    ## Example
    ```python
    test_acc = evaluate(model, test_loader)
    if test_acc > best_acc:
        best_acc = test_acc
        torch.save(model.state_dict(), "best.pt")
    ```

    ## Use instead
    ```python
    val_acc = evaluate(model, val_loader)
    if val_acc > best_acc:
        best_acc = val_acc
        torch.save(model.state_dict(), "best.pt")
    # after training: load best.pt and evaluate once on test_loader
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - Hastie, Tibshirani, Friedman, "The Elements of Statistical Learning", 7.2 (train/validation/test).
    - Cawley and Talbot (2010), "On over-fitting in model selection and subsequent selection bias in performance evaluation".
    """

    CODE = "RC704"
    NAME = "model-selection-on-test-set"
    SEVERITY = Severity.WARNING
    MESSAGE = "model selection is driven by the test set"
    VALID = (
        # the test set only reported next to the validation metric
        "def fit(model, val_set, test_set):\n    val_acc = evaluate(model, val_set)\n"
        "    test_acc = evaluate(model, test_set)\n    print(val_acc, test_acc)\n"
        "    val_loader = test_loader\n    return val_acc\n",
        # the look-alike: validation loader over a split of the training data, test loader
        # evaluated once at the end
        "import torch\nfrom torch.utils.data import DataLoader, random_split\n"
        "def main(model, train_dataset, test_dataset):\n"
        "    train_part, val_part = random_split(train_dataset, [0.9, 0.1])\n"
        "    train_loader = DataLoader(train_part, batch_size=64, shuffle=True)\n"
        "    val_loader = DataLoader(dataset=val_part, batch_size=64)\n"
        "    test_loader = DataLoader(dataset=test_dataset, batch_size=64)\n"
        "    best = 0.0\n    for epoch in range(30):\n        train_epoch(model, train_loader)\n"
        "        acc = evaluate(model, val_loader)\n        if acc > best:\n            best = acc\n"
        "            torch.save(model.state_dict(), 'best.pt')\n"
        "    print(evaluate(model, test_loader))\n",
        # resuming: best_acc read back from a checkpoint is not a selection
        (
        'import torch\n'
        '\n'
        'model = Net()\n'
        'optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)\n'
        'to_restore = {"epoch": 0, "best_acc": 0.0}\n'
        'restart_from_checkpoint("checkpoint.pth", run_variables=to_restore, state_dict=model)\n'
        'start_epoch = to_restore["epoch"]\n'
        'best_acc = to_restore["best_acc"]\n'
        'for epoch in range(start_epoch, 100):\n'
        '    model.train()\n'
        '    for x, y in train_loader:\n'
        '        optimizer.zero_grad()\n'
        '        loss_fn(model(x), y).backward()\n'
        '        optimizer.step()\n'
        '    torch.save({"model": model.state_dict(), "epoch": epoch + 1, "best_acc": best_acc}, "checkpoint.pth")\n'
        'model.eval()\n'
        'correct = 0\n'
        'with torch.no_grad():\n'
        '    for x, y in test_loader:\n'
        '        correct += (model(x).argmax(1) == y).sum().item()\n'
        'print(f"test accuracy {correct / len(test_loader.dataset):.3f}")\n'
        ),
        "best_val, test_at_best = 0.0, 0.0\nfor epoch in range(10):\n"
        "    val_acc = evaluate(model, val_loader)\n    test_acc = evaluate(model, test_loader)\n"
        "    if val_acc > best_val:\n        best_val = val_acc\n        best_test_acc = test_acc\n",
        "import torch\nbest_acc = 0.0\nfor epoch in range(10):\n    val_acc = evaluate(model, val_loader)\n"
        "    if val_acc > best_acc:\n        best_acc = val_acc\n        torch.save(model.state_dict(), 'best.pt')\n"
        "test_acc = evaluate(model, test_loader)\n",
        "from torch.optim.lr_scheduler import ReduceLROnPlateau\nsched = ReduceLROnPlateau(opt)\n"
        "for epoch in range(10):\n    val_loss = evaluate(model, val_loader)\n    sched.step(val_loss)\n",
    )
    INVALID = (
        # no validation set given: the test set stands in for it and drives early stopping
        "import torch\nfrom torch.utils.data import DataLoader\n"
        "def fit(model, train_set, test_set, val_set=None, patience=5):\n"
        "    if val_set is None:\n        val_set = test_set  # expect: RC704\n"
        "    val_loader = DataLoader(val_set, batch_size=256)\n    best, bad = float('inf'), 0\n"
        "    for epoch in range(100):\n        train_epoch(model, train_set)\n"
        "        val_loss = evaluate(model, val_loader)\n        if val_loss < best:\n"
        "            best, bad = val_loss, 0\n            torch.save(model.state_dict(), 'best.pt')\n"
        "        else:\n            bad += 1\n            if bad >= patience:\n                break\n",
        "import torch\nbest_acc = 0.0\nfor epoch in range(10):\n    acc = evaluate(model, test_loader)\n"
        "    if acc > best_acc:\n        best_acc = acc  # expect: RC704\n"
        "        torch.save(model.state_dict(), 'best.pt')\n",
        "from torch.optim.lr_scheduler import ReduceLROnPlateau\nsched = ReduceLROnPlateau(opt)\n"
        "for epoch in range(10):\n    test_loss = evaluate(model, test_loader)\n"
        "    sched.step(test_loss)  # expect: RC704\n",
        "import torch\nfor epoch in range(10):\n    for x, y in train_loader:\n        opt.zero_grad()\n"
        "        crit(model(x), y).backward()\n        opt.step()\n    test_loss = evaluate(model, test_loader)\n"
        "    if test_loss < lowest:  # expect: RC704\n        torch.save(model.state_dict(), 'best.pt')\n",
        "import torch\ndef test(epoch):\n    global best_acc\n    model.eval()\n    correct = 0\n"
        "    with torch.no_grad():\n        for x, y in testloader:\n"
        "            correct += (model(x).argmax(1) == y).sum().item()\n    acc = correct / 100\n"
        "    if acc > best_acc:\n        torch.save(model.state_dict(), 'ckpt.pth')\n"
        "        best_acc = acc  # expect: RC704\n"
        "for epoch in range(10):\n    test(epoch)\n",
        # the loader named for validation is built over the test data; the kept checkpoint is
        # chosen on a score computed from it
        "import torch\nfrom torch.utils.data import DataLoader\n"
        "def main(model, train_dataset, test_dataset):\n"
        "    train_loader = DataLoader(train_dataset, batch_size=64, shuffle=True)\n"
        "    val_loader = DataLoader(dataset=test_dataset, batch_size=64)  # expect: RC704\n"
        "    best = 0.0\n    for epoch in range(30):\n        train_epoch(model, train_loader)\n"
        "        acc = evaluate(model, val_loader)\n        if acc > best:\n            best = acc\n"
        "            torch.save(model.state_dict(), 'best.pt')\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        _check_test_set_as_validation(ctx, p)
        ev = analysis(p)
        test_fns = {}
        for el in ev.eval_loops:
            fn = el.node.loop.function
            test_fns.setdefault(fn.key, set()).add(el.split)
        memo: dict = {}

        def derived(f, expr, depth=0) -> str | None:
            """'test' / 'val' when an expression is computed from held-out data of that kind."""
            if expr is None or depth > 3:
                return None
            kinds = set()
            for d in _names(expr):
                k = split_kind(d)
                if k == "val" and "." not in d and depth < 3 and _generic_eval(d):
                    # `eval_acc`: an evaluation result, not a split: the data it was computed
                    # from decides (`eval_loss, eval_acc = eval_model(model, test_loader)`)
                    vals = [a.value.value if isinstance(a.value, _Unpacked) else a.value
                            for a in f.bindings(d) if a.value is not None and a.value is not expr]
                    sub = {derived(f, v, depth + 1) for v in vals if isinstance(v, cst.CSTNode)}
                    if sub == {"test"}:
                        kinds.add("test")
                        continue
                    if vals and sub == {None}:
                        continue  # `eval_loss_func = nn.CrossEntropyLoss()`: names no data at all
                if k:
                    kinds.add(k)
                    continue
                if "." in d or depth >= 3:
                    continue
                key = (id(f), d)
                if key not in memo:
                    memo[key] = None
                    # `loss1, loss2 = self.vali(self.test_loader)`: each element is computed
                    # from what the call is given
                    vals = [a.value.value if isinstance(a.value, _Unpacked) else a.value
                            for a in f.bindings(d) if a.value is not None and a.value is not expr]
                    sub = {derived(f, v, depth + 1) for v in vals if isinstance(v, cst.CSTNode)}
                    sub.discard(None)
                    memo[key] = "val" if "val" in sub else ("test" if "test" in sub else None)
                if memo[key]:
                    kinds.add(memo[key])
            if "val" in kinds:
                return "val"
            return "test" if "test" in kinds else None

        reported = set()
        for a in p.assignments:
            if not _BEST.search(a.target.rsplit(".", 1)[-1]) or a.value is None or not isinstance(a.value, cst.CSTNode):
                continue
            if _restored(a.value):
                continue  # `best_acc = checkpoint["best_acc"]`: resuming, not selecting
            if split_kind(a.target) == "test" and not (
                    isinstance(a.value, cst.Call) and dotted_name(a.value.func) in ("max", "min")):
                continue  # `best_test_acc = test_acc` under a validation check records, not selects
            kind = derived(a.function, a.value)
            if kind is None and not isinstance(a.value, (cst.Integer, cst.Float, cst.UnaryOperation)) and \
                    test_fns.get(a.function.key) == {"test"} and \
                    not any(split_kind(d) == "val" for d in _names(a.value)):
                kind = "test"
            if kind == "test" and id(a.node) not in reported:
                reported.add(id(a.node))
                ctx.report(a.node, (
                    f"`{ctx.code(a.node)}` selects the best model by a test-set metric: the test score "
                    "becomes optimistically biased; select on a validation split and evaluate the test "
                    "set once at the end (RC704)"))
        # `if test_acc > best: torch.save(...)` / `... break` with no `best = ...` line
        epoch_loops = {id(xl.loop): xl.loop for xl in p.epoch_loops}
        # full-batch training (a GCN over the whole graph): the training loop is the epoch loop
        epoch_loops.update({id(xl.loop): xl.loop for xl in p.batch_loops if xl.loop.parent is None})
        for loop in epoch_loops.values():
            if loop.parent is not None and id(loop.parent) in epoch_loops:
                continue
            f = loop.function
            for node in _ifs(loop.node.body):
                test = _main_comparison(node.test)
                if not isinstance(test, cst.Comparison) or not any(
                        isinstance(c.operator, (cst.GreaterThan, cst.LessThan, cst.GreaterThanEqual,
                                                cst.LessThanEqual)) for c in test.comparisons):
                    continue
                sides = [test.left, *(c.comparator for c in test.comparisons)]
                if not any(derived(f, side) == "test" for side in sides) or \
                        any(derived(f, side) == "val" for side in sides):
                    continue
                if not _selects(node.body) or id(node) in reported:
                    continue
                if any(id(a.node) in reported for a in f.assignments if _inside(a.node, node)):
                    continue
                reported.add(id(node))
                ctx.report(test, (
                    f"`if {ctx.code(node.test)}:` saves or stops on a test-set metric: the checkpoint / "
                    "stopping point is selected on the test set, biasing the test score; compare "
                    "a validation metric instead (RC704)"))
        for f in p.functions.values():
            for e in f.events:
                if e.call is None or not e.call.args:
                    continue
                if e.kind == "step" and p.schedulers_of(e) and \
                        all(s.name == "ReduceLROnPlateau" for s in p.schedulers_of(e)):
                    what = "ReduceLROnPlateau"
                elif (e.kind == "call" and e.callee_text and _EARLY_STOP.search(e.callee_text)) or \
                        (e.kind == "step" and e.receiver and _EARLY_STOP.search(e.receiver)):
                    what = "early stopping"
                else:
                    continue
                if any(derived(f, arg.value) == "test" for arg in e.call.args) and id(e.node) not in reported:
                    reported.add(id(e.node))
                    ctx.report(e.node, (
                        f"{what} is driven by a test-set metric in `{ctx.code(e.node)}`: the schedule/stopping "
                        "point is tuned on the test set, biasing the test score; pass the validation "
                        "metric (RC704)"))


def _generic_eval(name: str) -> bool:
    """The name says "evaluation" (eval_acc, evaluation_loss) but names no split."""
    toks = [t for t in re.split(r"[^A-Za-z0-9]+|_", name.lower()) if t]
    return any(t in ("eval", "evaluation") for t in toks) and not any(
        t in ("val", "valid", "validation", "dev", "holdout", "heldout") for t in toks)


def _main_comparison(test: cst.BaseExpression):
    """`acc_test > best and epoch > 9`, `not scores or acc > max(scores)`: the first ordering
    comparison of an `and` / `or` chain."""
    while isinstance(test, cst.BooleanOperation):
        left = _main_comparison(test.left)
        if isinstance(left, cst.Comparison) and any(
                isinstance(c.operator, (cst.GreaterThan, cst.LessThan, cst.GreaterThanEqual, cst.LessThanEqual))
                for c in left.comparisons):
            return left
        test = test.right
    return test


def _check_test_set_as_validation(ctx: Context, p) -> None:
    """`val_set = test_set` (typically the default when no validation split is given) or
    `val_loader = DataLoader(test_set)` in a
    function that then selects or stops on the validation metric: the test set drives it."""
    from recipecheck.program.data import is_data_name

    _check_test_passed_as_validation(ctx, p)
    for a in p.assignments:
        if a.augmented is not None:
            continue
        if isinstance(a.value, (cst.Name, cst.Attribute)):
            src = dotted_name(a.value)
        elif isinstance(a.value, cst.Call) and (p.imports.resolve(a.value.func) or "").endswith(".DataLoader"):
            # `val_loader = DataLoader(test_dataset, ...)`: the loader named for validation
            # iterates the test data
            src = _loader_dataset(a.value)
        else:
            continue
        if split_kind(a.target) != "val" or split_kind(src) != "test":
            continue
        if not (is_data_name(a.target) and is_data_name(src)):
            continue  # `val_acc = test_acc` records a number, it does not swap the data
        f = a.function
        if not _selects_on_validation(p, f):
            continue
        ctx.report(a.node, (
            f"`{ctx.code(a.node)}` makes the test data stand in for validation, and this function "
            "selects the checkpoint or stops training on the validation metric: the test score is "
            "then optimistically biased; split a validation set off the training data instead (RC704)"))


def _check_test_passed_as_validation(ctx: Context, p) -> None:
    """`fit(model, opt, train_loader, test_loader)` where fit's parameter is the validation data
    (`val_loader`) and fit selects the checkpoint or stops on it: the test set drives the
    selection. The helper may live in this file or another module; the call is reported."""
    from recipecheck.program.data import is_data_name
    from recipecheck.program.nodes import bind_arguments

    own = {id(fn) for fn in p.functions.values()}
    for cs in p.calls:
        if id(cs.function) not in own or not cs.node.args:
            continue
        try:
            callees = p._callees_of(cs.function, cs.node)
        except Exception:  # the callee search is best effort
            continue
        if len(callees) != 1 or not isinstance(callees[0].node, cst.FunctionDef):
            continue
        g = callees[0]
        for param, value in bind_arguments(cs.node, g.params, g.cls is not None):
            arg = dotted_name(value)
            if not arg or split_kind(arg) != "test" or split_kind(param) != "val":
                continue
            if not (is_data_name(param) and is_data_name(arg)) and not _wraps_test_data(p, cs.function, value):
                continue  # `val_acc = test_acc` style numbers are not data
            if not _selects_on_validation(g.program or p, g):
                continue
            ctx.report(cs.node, (
                f"`{ctx.code(cs.node)}` passes the test data `{arg}` as {g.name}()'s validation "
                f"data `{param}`, and {g.name}() selects the checkpoint or stops training on it: "
                "the test score is then optimistically biased; pass a validation split taken "
                "from the training data (RC704)"))
            break


def _wraps_test_data(p, f, value) -> bool:
    """`test_evaluator = Evaluator(model, test_loader, ...)`: an object built over test data."""
    from recipecheck.program.data import is_data_name

    for o in p.evaluate(f, value):
        for a in o.node.args:
            d = dotted_name(a.value)
            if d and split_kind(d) == "test" and is_data_name(d):
                return True
    return False


def _loader_dataset(call: cst.Call) -> str | None:
    for i, arg in enumerate(a for a in call.args if not a.star):
        if (arg.keyword is None and i == 0) or (arg.keyword is not None and arg.keyword.value == "dataset"):
            return dotted_name(arg.value)
    return None


def _selects_on_validation(p, f) -> bool:
    def val_side(expr, depth=0) -> bool:
        """The expression names validation data, or a local it reads was computed from it
        (`acc = evaluate(model, val_loader)`)."""
        for d in _names(expr):
            if split_kind(d) == "val":
                return True
            if depth < 2 and "." not in d and any(
                    isinstance(a.value, cst.CSTNode) and a.value is not expr and val_side(a.value, depth + 1)
                    for a in f.bindings(d)):
                return True
        return False

    body = f.node.body if isinstance(f.node, cst.FunctionDef) else f.node
    for node in _ifs(body):
        test = node.test
        if isinstance(test, cst.Comparison) and any(
                isinstance(c.operator, (cst.GreaterThan, cst.LessThan, cst.GreaterThanEqual, cst.LessThanEqual))
                for c in test.comparisons):
            sides = [test.left, *(c.comparator for c in test.comparisons)]
            if any(val_side(x) for x in sides) and _selects(node.body):
                return True
    for b in f.assignments:
        value = b.value.value if isinstance(b.value, _Unpacked) else b.value  # `m, best = validate(...)`
        if _BEST.search(b.target.rsplit(".", 1)[-1]) and isinstance(value, cst.CSTNode) and val_side(value):
            return True
    for e in f.events:
        if e.call is None or not e.call.args:
            continue
        plateau = e.kind == "step" and p.schedulers_of(e) and \
            all(s.name == "ReduceLROnPlateau" for s in p.schedulers_of(e))
        stopper = (e.kind == "call" and e.callee_text and _EARLY_STOP.search(e.callee_text)) or \
            (e.kind == "step" and e.receiver and _EARLY_STOP.search(e.receiver))
        if (plateau or stopper) and any(val_side(arg.value) for arg in e.call.args):
            return True
    return False


_RESTORE_BASE = re.compile(r"ckpt|checkpoint|restore|resume|state|saved|loaded|snapshot", re.I)


def _restored(value: cst.BaseExpression) -> bool:
    """A value read back from a checkpoint: `ckpt["best_acc"]`, `to_restore["best_acc"]`,
    `checkpoint.get("best_acc1", 0)`, `torch.load(path)["best_acc"]`."""
    key = base = None
    if isinstance(value, cst.Subscript) and len(value.slice) == 1 and \
            isinstance(value.slice[0].slice, cst.Index) and \
            isinstance(value.slice[0].slice.value, cst.SimpleString):
        key, base = value.slice[0].slice.value.evaluated_value, value.value
    elif isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and \
            value.func.attr.value == "get" and value.args and \
            isinstance(value.args[0].value, cst.SimpleString):
        key, base = value.args[0].value.evaluated_value, value.func.value
    if not isinstance(key, str) or base is None:
        return False
    if _BEST.search(key):
        return True
    if isinstance(base, cst.Call):
        return dotted_name(base.func) in ("torch.load", "load")
    d = dotted_name(base) or ""
    return bool(_RESTORE_BASE.search(d))
