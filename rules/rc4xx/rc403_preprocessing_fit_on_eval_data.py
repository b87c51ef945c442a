import libcst as cst

from recipecheck.finding import Severity
from recipecheck.program.imports import dotted_name
from recipecheck.program.data import data_model, is_data_name, is_eval_name, is_train_name
from recipecheck.rule import Context, Rule


_CENTERING = {"mean", "std", "var", "nanmean", "nanstd", "nanvar", "std_mean", "var_mean", "median",
              "nanmedian"}


class PreprocessingFitOnEvalData(Rule):
    """
    ## What it does
    Flags a scaler, PCA or normalization statistic fitted on validation or test data:
    `scaler.fit(X_test)`, `X_test = scaler.fit_transform(X_test)` (a refit on the test set
    after fitting on the training set), `PCA().fit(X_val)`, `StandardScaler().fit(np.vstack([X_train,
    X_test]))`, or `mu = X_val.mean(0)` / `X_test.std()` used to normalize. The arrays are
    recognized by their names (`X_test`, `x_val`, `valid_data`, `testset`) and by what they
    were derived from. `scaler.transform(X_test)` after `scaler.fit(X_train)` is the correct
    pattern and is not flagged. A helper function or dataset class that normalizes its input
    with the input's own statistics (`def standardize(x): return (x - x.mean(0)) / x.std(0)`)
    is reported where it is called on held-out data (`standardize(X_test)`).

    ## Why is this bad?
    The model is trained on inputs normalized with the training statistics and evaluated on
    inputs normalized with different ones: the evaluation no longer measures the model that
    will be deployed, and statistics of the held-out data leak into its own evaluation (on
    a small test set the leak is large). Refitting on the test set also hides distribution
    shift between training and test data instead of measuring it.

    Measured (`recipecheck validate RC403`, seeds 0-4): |test accuracy reported - accuracy on
    2000 fresh examples| (30-example test set): 0.0633 [4.98e-04, 0.135] with scaler fitted on
    the test set vs 0.0527 [4.98e-04, 0.155] with scaler fitted on the training set (mean [min,
    max]); the claim held on 2 of 5 seeds.

    ## Known problems
    Names decide what is held-out data: an array called `X2` is not recognized. Per-sample
    statistics (`x.mean(axis=1)`) are not leakage and are skipped; so are `min`/`max` of
    held-out arrays (mostly display scaling). Refitting on
    train+validation for a final model is legitimate; only a concatenation that includes a
    *test* array is reported.

    ## Example
    ```python
    X_train = scaler.fit_transform(X_train)
    X_test = scaler.fit_transform(X_test)
    ```

    ## Use instead
    ```python
    X_train = scaler.fit_transform(X_train)
    X_test = scaler.transform(X_test)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix (`fit_transform` -> `transform` is only right when the scaler was fitted on
    the training data before).

    ## References
    - scikit-learn user guide, "Common pitfalls: inconsistent preprocessing" and "data
      leakage".
    - CS231n notes, "Data preprocessing": "any preprocessing statistics must only be computed
      on the training data, and then applied to the validation / test data".
    """

    CODE = "RC403"
    NAME = "preprocessing-fit-on-eval-data"
    SEVERITY = Severity.ERROR
    MESSAGE = "a preprocessing statistic is fitted on validation/test data"
    VALID = (
        "from sklearn.preprocessing import StandardScaler\nscaler = StandardScaler()\n"
        "X_train = scaler.fit_transform(X_train)\nX_val = scaler.transform(X_val)\nX_test = scaler.transform(X_test)\n",
        # metrics are not data
        "import numpy as np\nval_losses = np.array(val_losses)\nprint((val_losses - val_losses.mean()) / val_losses.std())\n",
        # per-sample standardization of test images
        "x_test = (x_test - x_test.mean(axis=(1, 2), keepdims=True)) / x_test.std(axis=(1, 2), keepdims=True)\n",
        # final refit on train+validation
        "import numpy as np\nfrom sklearn.preprocessing import StandardScaler\n"
        "scaler = StandardScaler().fit(np.concatenate([X_train, X_val]))\n",
        # derived from the training split
        "from sklearn.model_selection import train_test_split\nfrom sklearn.preprocessing import StandardScaler\n"
        "X_train, X_test = train_test_split(X)\nfeats = X_train.to_numpy()\nscaler = StandardScaler().fit(feats)\n",
        # the look-alikes: training statistics passed in; per-sample standardization
        "import numpy as np\ndef apply_stats(x, mean, std):\n    return (x - mean) / std\n"
        "def per_row(x):\n    return (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)\n"
        "def load(data):\n    X_train, X_test = data['X_train'], data['X_test']\n"
        "    mean, std = X_train.mean(axis=0), X_train.std(axis=0)\n"
        "    return apply_stats(X_train, mean, std), apply_stats(X_test, mean, std), per_row(X_test)\n",
    )
    INVALID = (
        "from sklearn.preprocessing import StandardScaler\nscaler = StandardScaler()\n"
        "X_train = scaler.fit_transform(X_train)\nX_test = scaler.fit_transform(X_test)  # expect: RC403\n",
        "from sklearn.decomposition import PCA\npca = PCA(n_components=20)\npca.fit(X_val)  # expect: RC403\n",
        "mu = X_test.mean(0)  # expect: RC403\nsd = X_test.std(0)  # expect: RC403\nX_test = (X_test - mu) / sd\n",
        "X_val = (X_val - X_val.mean(0)) / X_val.std(0)  # expect: RC403\n",
        "import numpy as np\nfrom sklearn.preprocessing import MinMaxScaler\n"
        "scaler = MinMaxScaler().fit(np.vstack([X_train, X_test]))  # expect: RC403\n",
        # derived from the test split
        "from sklearn.preprocessing import StandardScaler\nfeats = X_test.to_numpy()[:, 2:]\n"
        "scaler = StandardScaler().fit(feats)  # expect: RC403\n",
        # a helper that standardizes its input with the input's own statistics, per split
        "import numpy as np\ndef standardize(x):\n    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-8)\n"
        "def load(data):\n    X_train, X_test = data['X_train'], data['X_test']\n"
        "    X_train = standardize(X_train)\n    X_test = standardize(X_test)  # expect: RC403\n"
        "    return X_train, X_test\n",
        # a dataset class that normalizes the images it is given with their own statistics
        "import numpy as np\nclass ImageSet:\n    def __init__(self, images, labels):\n"
        "        self.images = self.normalize(images)\n        self.labels = labels\n"
        "    def normalize(self, images):\n        images = images.astype('float32')\n"
        "        mean = images.mean(axis=(0, 1, 2))\n        std = images.std(axis=(0, 1, 2))\n"
        "        return (images - mean) / std\n"
        "train_set = ImageSet(train_images, train_labels)\n"
        "test_set = ImageSet(test_images, test_labels)  # expect: RC403\n",
    )

    def check(self, ctx: Context) -> None:
        dm = data_model(ctx.program)
        done: set[int] = set()
        for s in dm.stats:
            if s.kind == "stat" and s.method not in _CENTERING:
                continue  # min/max of test images is mostly display scaling
            if s.roots and len(s.roots) == 1 and s.function.params and s.roots[0].name in s.function.params:
                _check_helper_callers(ctx, dm, s, done)
            if not s.normalizes or (s.stmt is not None and s.stmt in done):
                continue
            direct = [r.name for r in s.roots if is_eval_name(r.name) and is_data_name(r.name)]
            if len(s.roots) > 1:  # a concatenation: only a test array makes it a leak
                direct = [n for n in direct if "test" in n.lower() or n.lower().endswith("_te")]
            elif not direct and s.roots and not is_train_name(s.roots[0].name):
                # derived from held-out data: X_t = X_test.to_numpy(); scaler.fit(X_t)
                anc = dm.ancestors(s.function, s.roots[0].name, s.order)
                evals = [a for a in anc if is_eval_name(a) and is_data_name(a)]
                if evals and not any(is_train_name(a) for a in anc):
                    direct = evals
            if not direct:
                continue
            what = "fitted on" if s.kind == "fit" else "computed on"
            if s.stmt is not None:
                done.add(s.stmt)
            ctx.report(s.node, (
                f"{ctx.code(s.node)}: normalization statistics {what} held-out data ({direct[0]}): "
                "evaluation inputs are scaled differently from training and the held-out set leaks into "
                "its own evaluation; fit on the training split and only transform the others (RC403)"))


def _normalizes_in_return(s) -> bool:
    """`return (x - x.mean(0)) / x.std(0)`: the statistic normalizes the function's result."""
    from recipecheck.program.nodes import walk

    # the names the statistic is bound to (`mean = x.mean(0)`)
    bound = {a.target for a in s.function.assignments
             if isinstance(a.value, cst.CSTNode) and any(n is s.node for n in walk(a.value))}
    for r in s.function.returns:
        if not isinstance(r, cst.CSTNode):
            continue
        for n in walk(r):
            if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Subtract, cst.Divide)):
                inside = list(walk(n))
                if any(x is s.node for x in inside) or any(
                        isinstance(x, cst.Name) and x.value in bound for x in inside):
                    return True
    return False


def _check_helper_callers(ctx: Context, dm, s, done: set) -> None:
    """A helper that normalizes its parameter with that parameter's own statistics
    (`def standardize(x): return (x - x.mean(0)) / x.std(0)`), called on held-out data:
    `standardize(X_test)` computes the statistics on the test set."""
    p = ctx.program
    root = s.roots[0].name
    f = s.function
    if root not in f.params or any(
            not isinstance(a.value, cst.CSTNode) or root not in _names(a.value) for a in f.bindings(root)):
        return  # rebound to something else than a conversion of itself (`x = x.astype(float)`)
    if not (s.normalizes or _normalizes_in_return(s)):
        return
    stack = [(f, root, 0)]
    while stack:
        fn, name, depth = stack.pop()
        for caller, arg in p.param_args(fn, name):
            d = dotted_name(arg)
            if d is None:
                continue
            leaf = d.rsplit(".", 1)[-1]
            if is_eval_name(leaf) and is_data_name(leaf) and not is_train_name(leaf):
                call = next((c for c in p.calls if c.function is caller and any(a.value is arg for a in c.node.args)), None)
                node = call.node if call is not None else arg
                if id(node) in done:
                    continue
                done.add(id(node))
                ctx.report(node, (
                    f"`{ctx.code(node)}` normalizes held-out data ({d}) with its own statistics "
                    f"({ctx.code(s.node)} in {f.name}()): evaluation inputs are scaled differently "
                    "from training and the held-out set leaks into its own evaluation; compute the "
                    "statistics on the training split and pass them in (RC403)"))
            elif "." not in d and d in caller.params and not caller.bindings(d) and depth < 2:
                stack.append((caller, d, depth + 1))


def _names(expr) -> set[str]:
    from recipecheck.program.nodes import walk

    return {n.value for n in walk(expr) if isinstance(n, cst.Name)}
