import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.data import data_model, is_eval_name
from recipecheck.rule import Context, Rule


class PreprocessingStatsBeforeSplit(Rule):
    """
    ## What it does
    Follows the data through the assignments of one function in statement order and flags
    normalization or PCA/whitening statistics computed on an array that is split into
    train/validation/test *afterwards*: `X.mean(0)`, `X.std()`, `np.mean(X, axis=0)`,
    `torch.mean(dataset.data.float())`, pandas' column-wise
    `df[cols].apply(lambda x: (x - x.mean()) / x.std())`, `X.min()`/`X.max()` used for min-max scaling,
    `StandardScaler().fit(X)`, `scaler.fit_transform(X)`, `PCA().fit(X)`, followed by
    `train_test_split(X, ...)`, `random_split(dataset, ...)`, `X[:n_train]` / `X[train_idx]`,
    `Subset(dataset, idx)` or `kfold.split(X)` on the same array or one derived from it
    (`X_scaled = scaler.fit_transform(X)` then `train_test_split(X_scaled)`). A `mean`/`std`
    counts only when its result is used to normalize (subtracted or divided, or passed to
    `Normalize`, a project scaler class `StandardScaler(mean, std)`, an in-place column
    assignment `df.loc[:, col] = (df[col] - mean) / std`, a helper's `return (x - m) / s`) and
    when it reduces over the sample axis (per-sample statistics such as
    `x.mean(axis=1, keepdims=True)` do not leak). Also: statistics accumulated over every batch
    of a loader that walks the whole dataset, columns selected by a loop over column names,
    and a helper (of this file or another module) that normalizes its argument with that
    argument's own statistics, which the caller then splits, directly or through a second
    helper (`data = normalize_dataset(data)` then `split_data_by_ratio(data, ...)`).

    ## Why is this bad?
    The statistics then contain the validation and test rows: information from the held-out
    data flows into the training inputs, and the held-out score is optimistic. The effect is
    largest for small datasets and for PCA/whitening, whose components are fitted to the
    test points. Fit every preprocessing step on the training split only and apply it
    unchanged to the others.

    Measured (`recipecheck validate RC402`, seeds 0-4): 5-fold cross-validated accuracy on pure
    noise (truth 0.5): 0.941 [0.938, 0.948] with fit before split vs 0.485 [0.44, 0.528] with
    fit on train fold (mean [min, max]); the claim held on 5 of 5 seeds.

    ## Known problems
    The flow is followed inside one function: statistics computed in a helper and returned,
    or a split done in another module, are not linked. Hard-coded constants (ImageNet's
    mean/std in `transforms.Normalize`) are correct and never flagged.

    ## Example
    ```python
    X = (X - X.mean(0)) / X.std(0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
    ```

    ## Use instead
    ```python
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)
    mu, sd = X_train.mean(0), X_train.std(0)
    X_train, X_test = (X_train - mu) / sd, (X_test - mu) / sd
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix: the statements must be reordered by hand.

    ## References
    - scikit-learn user guide, "Common pitfalls: data leakage" (preprocessing fitted on the
      whole dataset).
    - Kaufman et al. (2012), "Leakage in data mining: formulation, detection, and avoidance".
    - CS231n notes, "Data preprocessing": statistics computed on the training data only.
    """

    CODE = "RC402"
    NAME = "preprocessing-stats-before-split"
    SEVERITY = Severity.WARNING
    MESSAGE = "normalization statistics are computed before the train/test split"
    VALID = (
        "from sklearn.model_selection import train_test_split\nfrom sklearn.preprocessing import StandardScaler\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)\n"
        "scaler = StandardScaler().fit(X_train)\nX_train = scaler.transform(X_train)\nX_test = scaler.transform(X_test)\n",
        # slicing first, statistics of the training part
        "import numpy as np\nn_train = int(0.8 * len(X))\nX_train, X_val = X[:n_train], X[n_train:]\n"
        "mu = X_train.mean(axis=0)\nsd = X_train.std(axis=0)\nX_train = (X_train - mu) / sd\nX_val = (X_val - mu) / sd\n",
        # per-sample normalization does not leak
        "from sklearn.model_selection import train_test_split\n"
        "X = (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)\n"
        "X_train, X_test = train_test_split(X, test_size=0.2)\n",
        # statistics printed, not used to normalize
        "from sklearn.model_selection import train_test_split\nprint(X.mean(), X.std())\n"
        "X_train, X_test = train_test_split(X, test_size=0.2)\n",
        # hard-coded constants
        "import torchvision.transforms as T\nfrom torch.utils.data import random_split\n"
        "tf = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])\n"
        "train_set, val_set = random_split(full, [9000, 1000])\n",
        # pandas: each row standardized by its own statistics (axis=1) before the split
        "import pandas as pd\nimport torch\n"
        "feats = pd.concat((train_df.iloc[:, 1:-1], test_df.iloc[:, 1:]))\n"
        "feats[cols] = feats[cols].apply(lambda r: (r - r.mean()) / r.std(), axis=1)\n"
        "n_train = train_df.shape[0]\ntrain_x = torch.tensor(feats[:n_train].values)\n",
    )
    INVALID = (
        # pandas: train and test concatenated, standardized column by column, then sliced apart
        "import pandas as pd\nimport torch\n"
        "feats = pd.concat((train_df.iloc[:, 1:-1], test_df.iloc[:, 1:]))\n"
        "feats[cols] = feats[cols].apply(lambda x: (x - x.mean()) / x.std())  # expect: RC402\n"
        "n_train = train_df.shape[0]\ntrain_x = torch.tensor(feats[:n_train].values)\n"
        "test_x = torch.tensor(feats[n_train:].values)\n",
        "from sklearn.model_selection import train_test_split\n"
        "X = (X - X.mean(0)) / X.std(0)  # expect: RC402\n"
        "X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)\n",
        "from sklearn.model_selection import train_test_split\nfrom sklearn.preprocessing import StandardScaler\n"
        "X_scaled = StandardScaler().fit_transform(X)  # expect: RC402\n"
        "X_train, X_test, y_train, y_test = train_test_split(X_scaled, y)\n",
        "import torch\nfrom torch.utils.data import random_split\n"
        "mean = torch.mean(dataset.data.float() / 255)  # expect: RC402\n"
        "std = torch.std(dataset.data.float() / 255)  # expect: RC402\n"
        "normalize = T.Normalize((mean,), (std,))\ntrain_set, val_set = random_split(dataset, [50000, 10000])\n",
        "import numpy as np\nfrom sklearn.decomposition import PCA\n"
        "Z = PCA(n_components=50).fit_transform(X)  # expect: RC402\n"
        "Z_train, Z_test = Z[:800], Z[800:]\n",
    )

    def check(self, ctx: Context) -> None:
        dm = data_model(ctx.program)
        done: set[int] = set()
        splits = dm.splits
        if not splits:
            return
        _check_through_helpers(ctx, dm)
        for s in dm.stats:
            if not s.normalizes or (s.stmt is not None and s.stmt in done):
                continue
            whole = [r.name for r in s.roots if not r.part and not is_eval_name(r.name)]
            if not whole:
                continue
            # a statistic over every batch of a loader covers the dataset it walks
            whole += [n for r in list(whole) for n in sorted(dm.loop_sources(s.function, r))
                      if not is_eval_name(n)]
            for sp in splits:
                if sp.function is not s.function or sp.order < s.order or sp.node is s.node:
                    continue
                hit = None
                for r in sp.roots:
                    anc = dm.ancestors(sp.function, r.name, sp.order)
                    hit = next((w for w in whole if w in anc), None)
                    if hit:
                        break
                if hit is None:
                    continue
                if s.stmt is not None:
                    done.add(s.stmt)
                ctx.report(s.node, (
                    f"{ctx.code(s.node)} computes preprocessing statistics on all of {hit}, which "
                    f"{sp.how} splits afterwards: the held-out rows leak into the normalization and the "
                    "held-out score is optimistic; split first and fit on the training part only (RC402)"))
                break


def _param_positions(dm, f, names, order) -> set[int]:
    """Positions of the parameters of `f` that one of `names` (as of `order`) is computed from."""
    params = [q for q in f.params if q not in ("self", "cls")]
    out = set()
    for n in names:
        anc = dm.ancestors(f, n, order)
        out |= {i for i, q in enumerate(params) if q in anc}
    return out


def _check_through_helpers(ctx: Context, dm) -> None:
    """The statistics live in a helper (of this file or another module) that the caller runs
    before splitting: `data, scaler = normalize_dataset(data)` then `split_data_by_ratio(data,
    ...)` or `train_test_split(data)`: the helper normalizes its argument with statistics of all
    of it, and the caller (or a helper it calls next) splits it afterwards."""
    p = ctx.program
    own = {id(fn) for fn in p.functions.values()}

    memo: dict[int, tuple | None] = {}  # this file's run only: ids are reused across files

    def normalizer(g):
        """(positions, stat) when `g` normalizes one of its parameters with its own statistics."""
        if id(g) in memo:
            return memo[id(g)]
        memo[id(g)] = None
        prog = g.program if id(g) not in own and getattr(g, "program", None) is not None else p
        gdm = dm if prog is p else data_model(prog)
        for s in gdm.stats:
            if s.function is not g or not s.normalizes:
                continue
            whole = [r.name for r in s.roots if not r.part and not is_eval_name(r.name)]
            pos = _param_positions(gdm, g, whole, s.order)
            if pos:
                memo[id(g)] = (pos, s, prog)
                break
        return memo[id(g)]

    splits: dict[int, set[int]] = {}
    for sp in dm.splits:
        pos = _param_positions(dm, sp.function, [r.name for r in sp.roots], sp.order)
        if pos:
            splits.setdefault(id(sp.function), set()).update(pos)
    by_caller: dict[int, list] = {}
    for cs in p.calls:
        if id(cs.function) not in own:
            continue
        try:
            fns = p._callees_of(cs.function, cs.node)
        except Exception:  # the callee search is best effort
            continue
        if len(fns) != 1 or fns[0] is cs.function or not isinstance(fns[0].node, cst.FunctionDef):
            continue
        by_caller.setdefault(id(cs.function), []).append((cs, fns[0]))
    for calls in by_caller.values():
        for cs, g in calls:
            got = normalizer(g)
            if got is None:
                continue
            pos, stat, prog = got
            whole = [r.name for i in pos for r in _arg_roots(p, cs.node, i) if not r.part]
            if not whole:
                continue
            later = [(cs2.node, cs2.order, [r.name for i in splits[id(h)] for r in _arg_roots(p, cs2.node, i)])
                     for cs2, h in calls if cs2.order > cs.order and id(h) in splits]
            later += [(sp.node, sp.order, [r.name for r in sp.roots]) for sp in dm.splits
                      if sp.function is cs.function and sp.order > cs.order]
            for node2, order2, roots in later:
                anc = set()
                for r in roots:
                    anc |= dm.ancestors(cs.function, r, order2)
                hit = next((w for w in whole if w in anc), None)
                if hit is None:
                    continue
                where = f"in {g.name}()" if prog is p else f"in {g.name}(), another module"
                ctx.report(cs.node, (
                    f"{ctx.code(cs.node)} normalizes all of {hit} with statistics computed on it "
                    f"({prog.module.code_for_node(stat.node)} {where}), and "
                    f"{ctx.code(node2)} splits it afterwards: the held-out rows leak into the "
                    "normalization and the held-out score is optimistic; split first and fit on "
                    "the training part only (RC402)"))
                break


def _arg_roots(p, call, i: int):
    from recipecheck.program.data import data_roots

    args = [a for a in call.args if a.keyword is None and not a.star]
    return data_roots(p, args[i].value) if i < len(args) else []
