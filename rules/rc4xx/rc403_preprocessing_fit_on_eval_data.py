from recipecheck.finding import Severity
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
    pattern and is not flagged.

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
    )

    def check(self, ctx: Context) -> None:
        dm = data_model(ctx.program)
        done: set[int] = set()
        for s in dm.stats:
            if s.kind == "stat" and s.method not in _CENTERING:
                continue  # min/max of test images is mostly display scaling
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
