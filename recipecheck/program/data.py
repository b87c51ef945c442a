"""Facts about the data pipeline, shared by the RC4xx rules.

- which DataLoader constructions feed a training (batch) loop, resolved through the program
  model (``for x, y in train_loader``, ``enumerate(tqdm(self.train_loader))``, a loader passed
  as an argument, Lightning's ``train_dataloader()``);
- the roles a name plays from its spelling (train / eval split, data-like or metric);
- data flow in statement order within one function: which arrays preprocessing statistics
  are computed on (``X.mean(0)``, ``np.std(X)``, ``scaler.fit(X)``, ``PCA().fit_transform(X)``),
  where arrays are split (``train_test_split``, ``random_split``, ``X[:n_train]``,
  ``X[train_idx]``, ``Subset``, ``kf.split``), and which names derive from which;
- the transforms a dataset is built with and the random augmentations inside them.

Computed lazily from the model's call and assignment indexes and cached on the program; the
only walks are over small expressions (a call's arguments, an assignment's value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import libcst as cst

from recipecheck.program.nodes import call_arg

from recipecheck.program import torchnames as tn
from recipecheck.program.imports import dotted_name
from recipecheck.program.init import children, fast_walk
from recipecheck.program.model import Construction, FunctionInfo, ProgramModel, XLoop, _Unpacked

# --------------------------------------------------------------------------- names

_EVAL_TOK = r"val|valid|validation|valset|test|testing|testset|dev|holdout|eval|evaluation|te|vl|tst"
_TRAIN_TOK = r"train|training|trainset|tr|trn"
_DATA_SUFFIX = (r"set|sets|data|dataset|datasets|ds|x|images|imgs|inputs|features|feats|loader|loaders|dl|"
                r"samples|df|arr|array|iter|batches|tensor|tensors|split")
_EVAL_RE = re.compile(rf"(^|_)({_EVAL_TOK})(_|$)|^(val|valid|test|dev|eval)({_DATA_SUFFIX})$|"
                      rf"^(x|y|data|set|features|inputs|images|df|ds)(val|valid|test|dev)$")
_TRAIN_RE = re.compile(rf"(^|_)({_TRAIN_TOK})(_|$)|^(train|training)({_DATA_SUFFIX})$|"
                       rf"^(x|y|data|set|features|inputs|images|df|ds)(train|tr)$")
_DATA_RE = re.compile(r"(^|_)(x|data|dataset|datasets|ds|set|sets|feature|features|feats|input|inputs|"
                      r"image|images|img|imgs|samples|arr|array|df|frame|signal|signals|seq|seqs|"
                      r"sequences|pixels|points|matrix|tensor|tensors|vectors|loader|dl|split|"
                      r"trainset|testset|valset)(_|$)|"
                      rf"^({_EVAL_TOK}|{_TRAIN_TOK})({_DATA_SUFFIX})$|"
                      r"^(x|data|set|features|inputs|images|df|ds)(val|valid|test|dev|train|tr)$")
_METRIC_RE = re.compile(r"loss|acc|accuracy|score|pred|preds|prediction|output|outputs|logit|err|"
                        r"error|metric|auc|f1|result|results|stat|stats|mean|std|mu|sigma|hist|time",
                        re.I)


def _tokens_text(text: str) -> str:
    leaf = text.rsplit(".", 1)[-1]
    leaf = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", leaf).lower()
    return re.sub(r"\d+", "_", leaf).strip("_")


def is_eval_name(text: str | None) -> bool:
    """`X_test`, `val_loader`, `testset`, `valid_dl`: names of held-out data (not also train)."""
    if not text:
        return False
    t = _tokens_text(text)
    return bool(_EVAL_RE.search(t)) and not _TRAIN_RE.search(t)


def is_train_name(text: str | None) -> bool:
    if not text:
        return False
    t = _tokens_text(text)
    return bool(_TRAIN_RE.search(t)) and not _EVAL_RE.search(t)


def is_data_name(text: str | None) -> bool:
    """Names that hold inputs (X_test, val_data, testset), not metrics (val_loss, test_acc)."""
    if not text:
        return False
    t = _tokens_text(text)
    if _METRIC_RE.search(t):
        return False
    return bool(_DATA_RE.search(t))


# --------------------------------------------------------------------------- small helpers




def _walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    return fast_walk(node)


def _in_norm_expr(body, call) -> bool:
    """`call` is an operand of a subtraction or division in `body` ((x - x.mean()) / x.std())."""
    for n in fast_walk(body):
        if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Subtract, cst.Divide)):
            if n.right is call or n.left is call:
                return True
    return False


def _literal(node) -> object:
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.value]
    if isinstance(node, cst.Integer):
        return int(node.evaluated_value)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus) and \
            isinstance(node.expression, cst.Integer):
        return -int(node.expression.evaluated_value)
    if isinstance(node, cst.SimpleString):
        return node.evaluated_value
    return _NOT_LITERAL


_NOT_LITERAL = object()

_PASS_METHODS = {"float", "double", "astype", "to", "numpy", "cpu", "cuda", "reshape", "view", "flatten",
                 "squeeze", "unsqueeze", "permute", "transpose", "contiguous", "clone", "detach", "copy",
                 "type", "half", "to_numpy", "fillna", "dropna", "drop",
                 "div", "sub", "mul", "div_", "sub_", "long", "get_values", "as_matrix", "select_dtypes"}
_PASS_ATTRS = {"data", "values", "array", "tensors", "T", "X", "x", "features", "inputs", "dataset"}
_CONVERT = {"array", "asarray", "tensor", "from_numpy", "as_tensor", "Tensor", "FloatTensor", "asfarray",
            "ascontiguousarray", "float32", "DataFrame"}
_CONCAT = {"concatenate", "vstack", "hstack", "cat", "stack", "concat", "row_stack", "append"}


@dataclass(frozen=True)
class Root:
    name: str  # dotted name of the array / dataset
    part: bool = False  # a row selection of it (X[:n], X[idx]) rather than all of it


def _is_full_slice(el: cst.SubscriptElement) -> bool:
    s = el.slice
    return isinstance(s, cst.Slice) and s.lower is None and s.upper is None


def _is_column_key(el: cst.SubscriptElement, program: ProgramModel | None = None) -> bool:
    s = el.slice
    if isinstance(s, cst.Index):
        v = s.value
        if isinstance(v, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
            return True
        if isinstance(v, cst.List) and v.elements and all(isinstance(e.value, cst.SimpleString) for e in v.elements):
            return True
        if isinstance(v, cst.Name) and program is not None and v.value in _column_loop_vars(program):
            return True
    return False


def _strings(node) -> bool:
    return isinstance(node, (cst.List, cst.Tuple)) and bool(node.elements) and \
        all(isinstance(e.value, cst.SimpleString) for e in node.elements)


def _column_loop_vars(program: ProgramModel) -> set[str]:
    """Names that hold column names: a name bound to a list of strings (`target_fields =
    ['cnt', 'casual']`) and loop variables that walk one (`for each in quant_features:`,
    `for col in df.columns:`); `df[each]` then selects columns, not rows."""
    cached = program.__dict__.get("_rc_column_loop_vars")
    if cached is not None:
        return cached
    lists = {a.target for a in program.assignments if a.augmented is None and _strings(a.value)}
    out: set[str] = {t for t in lists if "." not in t and all(
        a.augmented is None and _strings(a.value) for a in program.assignments if a.target == t)}
    for n in _walk(program.module):
        if not isinstance(n, cst.For) or not isinstance(n.target, cst.Name):
            continue
        it = n.iter
        if _strings(it) or (isinstance(it, cst.Name) and it.value in lists) or \
                (isinstance(it, cst.Attribute) and it.attr.value == "columns"):
            out.add(n.target.value)
    program.__dict__["_rc_column_loop_vars"] = out
    return out


def data_roots(program: ProgramModel, expr, depth: int = 0) -> list[Root]:
    """The arrays an expression is computed from (`X.values.astype(float)[:, 1:]` -> X)."""
    if expr is None or depth > 12:
        return []
    if isinstance(expr, (cst.Name, cst.Attribute)):
        d = dotted_name(expr)
        if d is None:
            if isinstance(expr, cst.Attribute):
                if expr.attr.value in _PASS_ATTRS or expr.attr.value in ("iloc", "loc"):
                    return data_roots(program, expr.value, depth + 1)
            return []
        parts = d.split(".")
        while len(parts) > 1 and (parts[-1] in _PASS_ATTRS or parts[-1] in ("iloc", "loc")):
            parts.pop()
        return [Root(".".join(parts))]
    if isinstance(expr, cst.Call):
        func = expr.func
        if isinstance(func, cst.Attribute):
            q = program.imports.resolve(func)
            meth = func.attr.value
            if q is None and meth in ("transform", "fit_transform", "inverse_transform"):
                return data_roots(program, call_arg(expr, "X", 0), depth + 1)
            if q is None and meth in _PASS_METHODS:
                return data_roots(program, func.value, depth + 1)
            if q is not None and (q.startswith(("numpy.", "torch.", "pandas."))):
                name = tn.last(q)
                if name in _CONVERT:
                    return data_roots(program, call_arg(expr, None, 0), depth + 1)
                if name in _CONCAT:
                    first = call_arg(expr, None, 0)
                    out: list[Root] = []
                    if isinstance(first, (cst.List, cst.Tuple)):
                        for e in first.elements:
                            out += data_roots(program, e.value, depth + 1)
                    return out
        else:
            q = program.imports.resolve(func)
            if q is not None and tn.last(q) in _CONVERT:
                return data_roots(program, call_arg(expr, None, 0), depth + 1)
        return []
    if isinstance(expr, cst.Subscript):
        inner = data_roots(program, expr.value, depth + 1)
        if not expr.slice:
            return inner
        first = expr.slice[0]
        if _is_full_slice(first) or _is_column_key(first, program):
            return inner
        return [Root(r.name, part=True) for r in inner]
    if isinstance(expr, cst.BinaryOperation):
        return data_roots(program, expr.left, depth + 1) + data_roots(program, expr.right, depth + 1)
    if isinstance(expr, cst.UnaryOperation):
        return data_roots(program, expr.expression, depth + 1)
    return []


# --------------------------------------------------------------------------- records


@dataclass(eq=False)
class StatSite:
    """Normalization statistics computed on data (`X.mean(0)`, `scaler.fit(X)`)."""

    node: cst.Call
    function: FunctionInfo
    kind: str  # stat | fit
    roots: list[Root]
    order: int
    _normalizes: bool | None  # the result is used to normalize data (always True for fit)
    _dm: "DataModel | None" = None
    method: str = ""  # mean, std, max, fit_transform, ...

    @property
    def normalizes(self) -> bool:
        if self._normalizes is None:
            self._normalizes = self._dm._used_to_normalize(self.function, self.node)
        return self._normalizes

    @property
    def stmt(self) -> int | None:
        """id of the assignment statement holding the call, if any."""
        a = self._dm._index(self.function).stmt_of.get(id(self.node))
        return id(a.node) if a is not None else None


@dataclass(eq=False)
class SplitSite:
    node: cst.CSTNode
    function: FunctionInfo
    roots: list[Root]
    order: int
    how: str


_STATS = {"mean", "std", "var", "min", "max", "nanmean", "nanstd", "nanvar", "amin", "amax", "std_mean",
          "var_mean", "median", "nanmedian", "quantile", "percentile", "nanmin", "nanmax", "ptp"}
_SCALERS = {"StandardScaler", "MinMaxScaler", "RobustScaler", "MaxAbsScaler", "Normalizer", "PowerTransformer",
            "QuantileTransformer", "PCA", "IncrementalPCA", "KernelPCA", "TruncatedSVD", "FastICA",
            "FactorAnalysis", "SparsePCA", "Whitening", "ZCA"}
_SCALER_NAME = re.compile(r"scaler|normali[sz]er|pca|whiten|standardi[sz]er|minmax|zca|svd|ica$", re.I)
_SPLITTER_NAME = re.compile(r"^(kf|skf|gkf|cv|kfold|folds?|splitter|sss|ss|rkf|tscv|splits?)$", re.I)

AUGMENTATIONS = {
    "RandomCrop", "RandomResizedCrop", "RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation",
    "RandomAffine", "ColorJitter", "RandomErasing", "RandAugment", "AutoAugment", "TrivialAugmentWide",
    "AugMix", "RandomPerspective", "RandomGrayscale", "RandomApply", "RandomChoice", "RandomOrder",
    "RandomInvert", "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast",
    "RandomEqualize", "ElasticTransform", "RandomZoomOut", "RandomIoUCrop", "RandomPhotometricDistort",
    "RandomSizedCrop", "RandomScale", "RandomBrightnessContrast", "HorizontalFlip", "VerticalFlip",
    "ShiftScaleRotate", "HueSaturationValue", "CoarseDropout", "RandomResizedCropAndInterpolation",
    "RandomRotate90", "Cutout", "Mixup", "CutMix", "RandomMixup", "RandomCutmix",
}
_AUG_PREFIXES = ("torchvision.", "albumentations", "kornia.", "timm.data", "monai.transforms")
NORMALIZE_NAMES = {"Normalize", "normalize", "Standardize", "NormalizeIntensity", "ScaleIntensity"}


class DataModel:
    """Data-pipeline facts of one program (see the module docstring)."""

    def __init__(self, program: ProgramModel) -> None:
        self.p = program
        self.targets: dict[int, list[str]] = {}  # id(value call) -> assigned targets
        self.assign_order: dict[int, int] = {}
        for a in program.assignments:
            if a.augmented is not None:
                continue
            v = a.value
            if isinstance(v, _Unpacked):
                v = v.value
            if v is not None:
                self.targets.setdefault(id(v), []).append(a.target)
                self.assign_order.setdefault(id(v), a.order)
        self._stats: list[StatSite] | None = None
        self._fn_index: dict[int, _FnIndex] = {}
        self._anc_memo: dict[tuple, set[str]] = {}
        self._splits: list[SplitSite] | None = None

    # -- loaders feeding training
    def _unwrap_iter(self, f: FunctionInfo, expr, depth=0) -> list[tuple[FunctionInfo, cst.BaseExpression]]:
        if depth > 6 or expr is None:
            return []
        if isinstance(expr, cst.Call):
            d = dotted_name(expr.func)
            q = self.p.imports.resolve(expr.func)
            name = tn.last(q or d or "")
            if d in ("enumerate", "iter", "list", "reversed") or name in ("tqdm", "islice", "cycle", "track",
                                                                         "progress_bar", "trange"):
                return self._unwrap_iter(f, call_arg(expr, None, 0), depth + 1)
            if d == "zip":
                out = []
                for a in expr.args:
                    out += self._unwrap_iter(f, a.value, depth + 1)
                return out
        return [(f, expr)]

    def loaders_of(self, f: FunctionInfo, expr, depth: int = 0) -> list[Construction]:
        """The DataLoader constructions an iterated expression stands for."""
        out: list[Construction] = []
        for fn, e in self._unwrap_iter(f, expr):
            for c in self.p.evaluate(fn, e):
                if c.role == "loader":
                    out.append(c)
                elif depth < 3 and tn.last(c.qualname) in ("tqdm", "islice", "cycle", "track"):
                    out += self.loaders_of(c.function, call_arg(c.node, None, 0), depth + 1)
        return out

    @property
    def train_loaders(self) -> list[tuple[Construction, XLoop | None]]:
        cached = self.__dict__.get("_train_loaders")
        if cached is not None:
            return cached
        seen: set[int] = set()
        out: list[tuple[Construction, XLoop | None]] = []
        for xl in self.p.batch_loops:
            it = xl.loop.iter
            if it is None:
                continue
            for c in self.loaders_of(xl.loop.function, it):
                if id(c.node) not in seen:
                    seen.add(id(c.node))
                    out.append((c, xl))
        # Lightning: def train_dataloader(self): return DataLoader(...)
        for cls in self.p.classes.values():
            m = cls.methods.get("train_dataloader")
            if m is None:
                continue
            for r in m.returns:
                for c in self.p.evaluate(m, r):
                    if c.role == "loader" and id(c.node) not in seen:
                        seen.add(id(c.node))
                        out.append((c, None))
        self.__dict__["_train_loaders"] = out
        return out

    def dataset_of(self, loader: Construction) -> cst.BaseExpression | None:
        return loader.arg("dataset", 0)

    def dataset_constructions(self, loader: Construction) -> list[Construction]:
        ds = self.dataset_of(loader)
        return self.p.evaluate(loader.function, ds) if ds is not None else []

    def is_iterable_dataset(self, loader: Construction) -> bool:
        for c in self.dataset_constructions(loader):
            name = tn.last(c.qualname)
            if name in ("IterableDataset", "WebDataset", "IterableWrapper", "ChainDataset", "DataPipe",
                        "IterDataPipe"):
                return True
            if c.qualname.startswith("local:"):
                cls = self.p.classes.get(c.qualname[6:])
                seen = 0
                while cls is not None and seen < 8:
                    seen += 1
                    if any(b.endswith(("IterableDataset", "IterDataPipe")) for b in cls.bases):
                        return True
                    cls = next((self.p.classes[b] for b in cls.bases if b in self.p.classes), None)
            if name == "load_dataset" and _literal(c.arg("streaming")) is True:
                return True
        return False

    # -- statistics and splits
    def _index(self, f: FunctionInfo) -> "_FnIndex":
        idx = self._fn_index.get(id(f))
        if idx is None:
            idx = _FnIndex(self.p, f)
            self._fn_index[id(f)] = idx
        return idx

    def _used_to_normalize(self, f: FunctionInfo, call: cst.Call) -> bool:
        idx = self._index(f)
        if id(call) in idx.in_norm_binop:
            return True
        targets = set(self.targets.get(id(call), []))
        # the stat may be wrapped: mu = X.mean(0).item(), mean = X.mean() / 255
        a = idx.stmt_of.get(id(call))
        if a is not None and (a.augmented is None or a.augmented == "AddAssign"):
            # (`mean += x.mean(...)` over the batches of a loader accumulates the statistic)
            targets.add(a.target)
        return bool(targets & idx.norm_names)

    @staticmethod
    def _across_samples(axis) -> bool | None:
        """True: reduces over the sample axis (or everything); False: per-sample; None: unknown."""
        if axis is None:
            return True
        v = _literal(axis)
        if v is _NOT_LITERAL:
            if isinstance(axis, (cst.Tuple, cst.List)):
                vals = [_literal(e.value) for e in axis.elements]
                if any(x is _NOT_LITERAL for x in vals):
                    return None
                return 0 in vals
            return None
        if v is None:
            return True
        return v == 0

    def _is_scaler(self, f: FunctionInfo, recv: cst.BaseExpression) -> bool:
        if isinstance(recv, cst.Call):
            q = self.p.imports.resolve(recv.func)
            return q is not None and (q.startswith("sklearn.decomposition") or tn.last(q) in _SCALERS)
        d = dotted_name(recv)
        if d is None:
            return False
        for c in self.p.evaluate_dotted(f, d) if d.count(".") <= 1 else []:
            q = c.qualname
            if q.startswith("sklearn.decomposition") or tn.last(q) in _SCALERS:
                return True
            if q.startswith("sklearn."):
                return False
        return bool(_SCALER_NAME.search(d.rsplit(".", 1)[-1]))

    @property
    def stats(self) -> list[StatSite]:
        if self._stats is not None:
            return self._stats
        out: list[StatSite] = []
        for cs in self.p.calls:
            call = cs.node
            func = call.func
            q = cs.qualname
            if isinstance(func, cst.Attribute) and q is None:
                meth = func.attr.value
                if meth in _STATS:
                    axis = call_arg(call, "axis", 0)
                    if axis is None:
                        axis = call_arg(call, "dim", 0)
                    if meth in ("quantile", "percentile"):
                        axis = call_arg(call, "axis", None) or call_arg(call, "dim", None)
                    if self._across_samples(axis) is not True:
                        continue
                    roots = data_roots(self.p, func.value)
                    if roots:
                        out.append(StatSite(call, cs.function, "stat", roots, self._order(cs), None,
                                           method=tn.last(q or dotted_name(func) or "")))
                elif meth in ("fit", "fit_transform", "partial_fit") and call.args and \
                        self._is_scaler(cs.function, func.value):
                    roots = data_roots(self.p, call_arg(call, "X", 0))
                    if roots:
                        out.append(StatSite(call, cs.function, "fit", roots, self._order(cs), True))
            elif q is not None and q.startswith(("numpy.", "torch.")) and tn.last(q) in _STATS:
                axis = call_arg(call, "axis", 1)
                if axis is None:
                    axis = call_arg(call, "dim", 1)
                if tn.last(q) in ("quantile", "percentile"):
                    axis = call_arg(call, "axis", None) or call_arg(call, "dim", None)
                if self._across_samples(axis) is not True:
                    continue
                roots = data_roots(self.p, call_arg(call, None, 0))
                if roots:
                    out.append(StatSite(call, cs.function, "stat", roots, self._order(cs), None,
                                           method=tn.last(q or dotted_name(func) or "")))
        out += self._columnwise_stats()
        for s in out:
            s._dm = self
        self._stats = out
        return out

    def _columnwise_stats(self) -> list[StatSite]:
        """`df[cols].apply(lambda x: (x - x.mean()) / x.std())` (column by column, no `axis=1`):
        each column's statistics are statistics of df over all its rows."""
        out: list[StatSite] = []
        for cs in self.p.calls:
            func = cs.node.func
            if cs.qualname is not None or not isinstance(func, cst.Attribute) or \
                    func.attr.value not in ("apply", "transform") or not cs.node.args:
                continue
            lam = cs.node.args[0].value
            axis = call_arg(cs.node, "axis", 1)
            if cs.node.args[0].keyword is not None or not isinstance(lam, cst.Lambda) or \
                    len(lam.params.params) != 1 or (axis is not None and _literal(axis) not in (0, "index")):
                continue
            param = lam.params.params[0].name.value
            frame = func.value
            if isinstance(frame, cst.Subscript) and not any(
                    isinstance(e.slice, cst.Slice) for e in frame.slice):
                frame = frame.value  # a column selection keeps every row
            roots = [r for r in data_roots(self.p, frame) if not r.part]
            if not roots:
                continue
            for n in fast_walk(lam.body):
                if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and \
                        n.func.attr.value in ("mean", "std", "var", "min", "max") and not n.args and \
                        isinstance(n.func.value, cst.Name) and n.func.value.value == param:
                    if _in_norm_expr(lam.body, n):
                        out.append(StatSite(n, cs.function, "stat", roots, cs.order, True,
                                            method=n.func.attr.value))
                        break  # one finding per normalizing lambda
        return out

    def _order(self, cs) -> int:
        return cs.order

    @property
    def splits(self) -> list[SplitSite]:
        if self._splits is not None:
            return self._splits
        out: list[SplitSite] = []
        p = self.p
        for cs in p.calls:
            name = tn.last(cs.qualname or cs.dotted or "")
            call = cs.node
            if name == "train_test_split":
                roots = []
                for a in call.args:
                    if a.keyword is None and not a.star:
                        roots += [r for r in data_roots(p, a.value) if not r.part]
                out.append(SplitSite(call, cs.function, roots, cs.order, "train_test_split(...)"))
            elif name in ("random_split", "Subset") and (cs.qualname or "").startswith("torch.utils.data") or \
                    (cs.qualname is None and cs.dotted in ("random_split", "Subset")):
                if name == "Subset" and not any(is_eval_name(t) or is_train_name(t)
                                                for t in self._targets_around(call)) and \
                        not any(is_eval_name(dotted_name(a.value)) or is_train_name(dotted_name(a.value))
                                for a in call.args[1:2]):
                    continue
                roots = [r for r in data_roots(p, call_arg(call, "dataset", 0)) if not r.part]
                out.append(SplitSite(call, cs.function, roots, cs.order, f"{name}(...)"))
            elif name == "split" and isinstance(call.func, cst.Attribute):
                recv = dotted_name(call.func.value)
                objs = p.evaluate_dotted(cs.function, recv) if recv and recv.count(".") <= 1 else []
                if any(o.qualname.startswith("sklearn.model_selection") for o in objs) or \
                        (recv and _SPLITTER_NAME.match(recv.rsplit(".", 1)[-1])) or \
                        (isinstance(call.func.value, cst.Call) and
                         (p.imports.resolve(call.func.value.func) or "").startswith("sklearn.model_selection")):
                    roots = []
                    for a in call.args:
                        if a.keyword is None and not a.star:
                            roots += [r for r in data_roots(p, a.value) if not r.part]
                    out.append(SplitSite(call, cs.function, roots, cs.order, f"{ctx_code(p, call)}"))
            elif name == "sample" and isinstance(call.func, cst.Attribute) and \
                    call_arg(call, "frac", None) is not None and \
                    any(is_train_name(t) or is_eval_name(t) for t in self.targets.get(id(call), [])):
                roots = [r for r in data_roots(p, call.func.value) if not r.part]
                out.append(SplitSite(call, cs.function, roots, cs.order, "df.sample(frac=...)"))
        # row selections assigned to train/val/test names: X_train = X[:n_train], also converted
        # (torch.tensor(X[:n_train].values))
        for a in p.assignments:
            v = a.value
            if not isinstance(v, (cst.Subscript, cst.Call)) or a.augmented is not None:
                continue
            if not (is_train_name(a.target) or is_eval_name(a.target)):
                continue
            roots = data_roots(p, v)
            whole = [Root(r.name) for r in roots if r.part and r.name != a.target]
            if whole:
                out.append(SplitSite(v, a.function, whole, a.order, f"{a.target} = {ctx_code(p, v)}"))
        self._splits = out
        return out

    def _targets_around(self, call: cst.Call) -> list[str]:
        return self.targets.get(id(call), [])

    def loop_sources(self, f: FunctionInfo, name: str) -> set[str]:
        """For a loop variable (`for x, _ in loader:`), the data the loop walks in full: the
        iterable and, for a DataLoader bound to a name, the dataset it wraps."""
        it = self._index(f).loop_iters.get(name)
        if it is None:
            return set()
        out: set[str] = set()
        for r in data_roots(self.p, it):
            if r.part:
                continue
            out.add(r.name)
            if "." in r.name:
                continue
            for o in self.p.evaluate_dotted(f, r.name):
                if tn.is_dataloader(o.qualname):
                    ds = call_arg(o.node, "dataset", 0)
                    out |= {q.name for q in data_roots(self.p, ds) if not q.part}
        return out

    def ancestors(self, f: FunctionInfo, name: str, before: int) -> set[str]:
        """Names `name` was computed from, through assignments before `before` (transitively)."""
        key = (id(f), name, before)
        if key in self._anc_memo:
            return self._anc_memo[key]
        out = {name}
        self._anc_memo[key] = out
        frontier = [name]
        binds = self._index(f).binds
        while frontier:
            n = frontier.pop()
            for a in binds.get(n, []):
                if a.order > before:
                    continue
                v = a.value.value if isinstance(a.value, _Unpacked) else a.value
                for r in data_roots(self.p, v):
                    if r.name not in out:
                        out.add(r.name)
                        frontier.append(r.name)
                if isinstance(v, cst.Call):
                    # X_scaled = scaler.fit_transform(X); X_tr, X_te = train_test_split(X, y)
                    for arg in v.args:
                        for r in data_roots(self.p, arg.value):
                            if r.name not in out:
                                out.add(r.name)
                                frontier.append(r.name)
        return out

    # -- transforms
    def transform_calls(self, f: FunctionInfo, expr, depth: int = 0) -> list[cst.Call]:
        """Every call inside the transform an expression refers to (Compose([...]) expanded)."""
        if expr is None or depth > 5:
            return []
        out: list[cst.Call] = []
        if isinstance(expr, cst.Call):
            q = self.p.imports.resolve(expr.func)
            d = dotted_name(expr.func)
            if q is None and d is not None and not d.startswith("self.") and "." not in d:
                fns = self.p._callees_of(f, expr)
                if fns and not expr.args and len(fns[0].returns) == 1:
                    return self.transform_calls(fns[0], fns[0].returns[0], depth + 1)
                if fns and _asks_for_training(expr):
                    # build_transforms(train=True): everything the factory can build
                    return [cs.node for cs in self.p.calls if cs.function is fns[0]]
                if fns:
                    return []
            for n in _walk(expr):
                if isinstance(n, cst.Call):
                    out.append(n)
            # names inside Compose([...]) that refer to other transforms: normalize_tf
            for n in _walk(expr):
                if isinstance(n, cst.List) or isinstance(n, cst.Tuple):
                    for e in n.elements:
                        if isinstance(e.value, cst.Name):
                            out += self.transform_calls(f, e.value, depth + 1)
            out += self._list_argument_calls(f, expr, depth)
            return out
        if isinstance(expr, cst.Subscript) and expr.slice and isinstance(expr.slice[0].slice, cst.Index):
            key = _literal(expr.slice[0].slice.value)
            base = dotted_name(expr.value)
            if isinstance(key, str) and base:
                for a in self._bindings(f, base):
                    if isinstance(a.value, cst.Dict):
                        for el in a.value.elements:
                            if isinstance(el, cst.DictElement) and _literal(el.key) == key:
                                return self.transform_calls(a.function, el.value, depth + 1)
            return []
        d = dotted_name(expr)
        if d is not None:
            for a in self._bindings(f, d):
                if a.value is not None and not isinstance(a.value, _Unpacked):
                    out += self.transform_calls(a.function, a.value, depth + 1)
                    if isinstance(a.value, (cst.List, cst.Tuple)):
                        out += self._appended_calls(a.function, d, depth)
        return out

    def _list_argument_calls(self, f: FunctionInfo, call: cst.Call, depth: int) -> list[cst.Call]:
        """`Compose(t)` where `t` names a list: the transforms in that list."""
        out: list[cst.Call] = []
        for a in call.args:
            if isinstance(a.value, cst.Name):
                out += self.transform_calls(f, a.value, depth + 1)
        return out

    def _appended_calls(self, f: FunctionInfo, name: str, depth: int) -> list[cst.Call]:
        """Calls added to the list `name` in `f`: `t.append(T.RandomCrop(32))`, `t.extend([...])`,
        `t += [...]` (transform lists built step by step, then composed)."""
        out: list[cst.Call] = []
        for cs in self.p.calls:
            if cs.function is f and cs.dotted in (f"{name}.append", f"{name}.extend", f"{name}.insert"):
                for a in cs.node.args:
                    out += [n for n in _walk(a.value) if isinstance(n, cst.Call)]
        for a in f.assignments:
            if a.target == name and a.augmented == "AddAssign" and isinstance(a.value, cst.CSTNode):
                out += [n for n in _walk(a.value) if isinstance(n, cst.Call)]
        return out

    def _bindings(self, f: FunctionInfo, dotted: str) -> list:
        if dotted.startswith("self.") and dotted.count(".") == 1:
            cls = f.cls or (f.parent.cls if f.parent else None)
            out = []
            if cls is not None:
                for m in cls.methods.values():
                    out += m.bindings(dotted)
            return out
        scope: FunctionInfo | None = f
        while scope is not None:
            b = scope.bindings(dotted)
            if b:
                return b
            scope = scope.parent
        return []

    def augmentations(self, f: FunctionInfo, expr) -> list[cst.Call]:
        out = []
        for c in self.transform_calls(f, expr):
            d = dotted_name(c.func)
            if d is None:
                continue
            q = self.p.imports.resolve_dotted(d)
            name = tn.last(q or d)
            if name not in AUGMENTATIONS:
                continue
            if q is None and d in self.p.classes:
                continue  # the user's own class of that name
            if q is not None and not q.startswith(_AUG_PREFIXES) and "transforms" not in q:
                continue
            out.append(c)
        return out

    def has_normalize(self, f: FunctionInfo, expr) -> bool | None:
        calls = self.transform_calls(f, expr)
        if not calls:
            return None
        names = {tn.last(self.p.imports.resolve(c.func) or dotted_name(c.func) or "") for c in calls}
        if names & NORMALIZE_NAMES:
            return True
        if names & {"Lambda", ""} or any(n and n[0].islower() and n not in ("Compose",) for n in names):
            return None  # a user function may normalize
        return False


def _own_statements(fn_node: cst.CSTNode | None) -> Iterator[cst.CSTNode]:
    """The nodes of a function (or module) body, not of the functions and classes inside it."""
    if fn_node is None:
        return
    stack = list(children(fn_node))
    while stack:
        n = stack.pop()
        if isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        yield n
        stack.extend(children(n))


class _FnIndex:
    """One walk over a function's assignment values: which statement holds a node, which
    nodes and names take part in a subtraction/division (normalization)."""

    def __init__(self, p: ProgramModel, f: FunctionInfo) -> None:
        self.stmt_of: dict[int, object] = {}
        self.in_norm_binop: set[int] = set()
        self.norm_names: set[str] = set()
        self.binds: dict[str, list] = {}
        self.loop_iters: dict[str, cst.BaseExpression] = {}  # `for x, y in loader:` x -> loader
        # the function's own `for` statements (the model keeps them: no walk of the body)
        for st in (lp.node for lp in reversed(f.loops)):  # last first, as the walk did
            if isinstance(st, cst.For):
                targets = [st.target] if isinstance(st.target, cst.Name) else \
                    [e.value for e in st.target.elements] if isinstance(st.target, (cst.Tuple, cst.List)) else []
                for t in targets:
                    if isinstance(t, cst.Name):
                        self.loop_iters.setdefault(t.value, st.iter)
        for a in f.assignments:
            if a.augmented is None:
                self.binds.setdefault(a.target, []).append(a)
            v = a.value.value if isinstance(a.value, _Unpacked) else a.value
            if v is None:
                continue
            if a.augmented in ("SubtractAssign", "DivideAssign"):
                self._mark(v)
            stack = [(v, False)]
            while stack:
                n, inside = stack.pop()
                self.stmt_of.setdefault(id(n), a)
                if inside:
                    self.in_norm_binop.add(id(n))
                    if isinstance(n, (cst.Name, cst.Attribute)):
                        d = dotted_name(n)
                        if d:
                            self.norm_names.add(d)
                if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Subtract, cst.Divide)):
                    inside = True
                stack.extend((c, inside) for c in children(n))
        # a column normalized in place: `df.loc[:, col] = (df[col] - mean) / std` (the model
        # records no assignment to a subscript)
        for st in _own_statements(f.node):
            if isinstance(st, cst.Assign) and any(isinstance(t.target, cst.Subscript) for t in st.targets):
                for n in _walk(st.value):
                    if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Subtract, cst.Divide)):
                        self._mark(n)
        # a helper that returns the normalized data: `return (data - mean) / std`
        for r in f.returns:
            for n in _walk(r):
                if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Subtract, cst.Divide)):
                    self._mark(n)
        for cs in p.calls:
            if cs.function is not f:
                continue
            name = tn.last(cs.qualname or cs.dotted or "")
            # also a scaler class of the project built from the statistics: `StandardScaler(mean,
            # std)`, `MinMax01Scaler(minimum, maximum)` (sklearn's take no statistics)
            if name in NORMALIZE_NAMES or name in ("sub", "div", "sub_", "div_") or \
                    (_SCALER_NAME.search(name) and cs.node.args and
                     not (cs.qualname or "").startswith("sklearn.")):
                for arg in cs.node.args:
                    self._mark(arg.value)

    def _mark(self, node: cst.CSTNode) -> None:
        for n in _walk(node):
            self.in_norm_binop.add(id(n))
            if isinstance(n, (cst.Name, cst.Attribute)):
                d = dotted_name(n)
                if d:
                    self.norm_names.add(d)


_TRAIN_FLAG = re.compile(r"^(train|is_train|training|is_training|augment|augmentation|aug|use_aug)$")


def _asks_for_training(call: cst.Call) -> bool:
    """A transform factory called for the training variant: f(train=True), f("train")."""
    for a in call.args:
        v = _literal(a.value)
        if a.keyword is not None and _TRAIN_FLAG.match(a.keyword.value) and v is True:
            return True
        if isinstance(v, str) and v.lower() in ("train", "training"):
            return True
    return False


def ctx_code(program: ProgramModel, node: cst.CSTNode) -> str:
    return " ".join(program.module.code_for_node(node).split())


def data_model(program: ProgramModel) -> DataModel:
    cached = program.__dict__.get("_rc_data_model")
    if cached is None:
        cached = DataModel(program)
        program.__dict__["_rc_data_model"] = cached
    return cached


def eval_context_of_call(dm: DataModel, call: cst.Call, function: FunctionInfo) -> str | None:
    """'eval' / 'train' / None: what split a dataset or loader construction is for."""
    train = _literal(call_arg(call, "train", None))
    if train is True:
        return "train"
    if train is False:
        return "eval"
    split = _literal(call_arg(call, "split", None))
    if isinstance(split, str):
        s = split.lower()
        if re.search(r"val|test|dev|eval", s):
            return "eval"
        if "train" in s:
            return "train"
    names = list(dm.targets.get(id(call), []))
    if any(is_eval_name(t) for t in names):
        return "eval"
    if any(is_train_name(t) for t in names):
        return "train"
    # nested in a loader that is assigned: val_loader = DataLoader(ImageFolder(valdir, tf))
    for cs in dm.p.calls:
        if cs.function is function and any(a.value is call for a in cs.node.args):
            outer = dm.targets.get(id(cs.node), [])
            if any(is_eval_name(t) for t in outer):
                return "eval"
            if any(is_train_name(t) for t in outer):
                return "train"
    first = call_arg(call, "root", 0)
    if first is not None:
        for n in _walk(first):
            if isinstance(n, cst.SimpleString) and isinstance(n.evaluated_value, str):
                v = n.evaluated_value.lower().strip("/")
                if re.fullmatch(r"(val|valid|validation|test|dev)", v) or \
                        re.search(r"(^|/)(val|valid|validation|test)(/|$)", v):
                    return "eval"
                if re.search(r"(^|/)train(/|$)", v) or v == "train":
                    return "train"
            elif isinstance(n, cst.Name):
                if re.fullmatch(r"(val|valid|test|eval)(_?dir|_?path|_?root|_?folder)", n.value.lower()):
                    return "eval"
                if re.fullmatch(r"train(_?dir|_?path|_?root|_?folder)", n.value.lower()):
                    return "train"
    return None
