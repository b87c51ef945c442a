"""Per-module summaries: plain data about one module's text, cached by content hash.

Stage 1 of the pipeline (DESIGN.md, "The project, not the file"). A summary depends on the
module's content alone, so it is computed once per content hash (CPython's own parser: several
times faster than libcst's) and kept in memory and, when the lint cache is on, in the on-disk
cache directory next to the lint results. It holds what the project link needs to decide which
neighbours matter *before* parsing any of them with libcst:

- ``deep``: why libcst must not parse the text (nesting, size), or None;
- ``functions`` / ``classes``: the top-level definitions, classes with their bases, methods,
  whether they look like ``nn.Module`` subclasses and whether their ``__init__`` builds layers;
- ``imports``: every import statement's (module, level, name, local) (resolution against the
  project is done by :mod:`recipecheck.program.project`: it depends on the file tree);
- ``uses``: the names the code reads, with the attribute chains rooted at them
  (``engine.train_one_epoch``), per top-level definition and for module-level code;
- ``training``: which functions/methods call ``.step()`` / ``.zero_grad()`` / ``.backward()``
  or build optimizers / schedulers;
- ``lines``: the line of each top-level statement (what a finding's position is computed from
  when the node's text alone does not place it);
- ``stmts``: each top-level statement's first and last line (decorators included) and its
  owner: the function or class it defines, ``<module>`` for other module-level code, ``<main>``
  for an ``if __name__ == "__main__":`` block (which does not run when the module is imported).
  From these and ``uses``, the link reads of a neighbour only the statements the linted file
  needs (:func:`view_owners`; :func:`recipecheck.program.link.statement_groups`).

A summary never holds libcst nodes: loading a pickled libcst tree costs about as much as parsing.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

SUMMARY_VERSION = 2
MODULE_CODE = "<module>"  # the key of module-level code in `uses`
MAIN_CODE = "<main>"  # the key of an `if __name__ == "__main__":` block

_TRAINING_ATTRS = {"step": "step", "zero_grad": "zero_grad", "backward": "backward"}
_OPTIMIZER_HINTS = ("optim.", "torch.optim.")
_SCHEDULER_HINTS = ("lr_scheduler.",)

# in-process memo: content hash -> summary (None: CPython cannot parse the text)
_MEMO: dict[str, dict | None] = {}
_MEMO_MAX = 4096
_disk = False
# how many summaries were computed / read from disk in this process (tests, benchmarks)
stats = {"computed": 0, "disk_hits": 0}


def set_disk_cache(enabled: bool) -> None:
    """Read and write summaries in the on-disk cache (the lint cache's switch: --no-cache)."""
    global _disk
    _disk = enabled


def content_key(text: str) -> str:
    from recipecheck import engine as e

    h = hashlib.sha256()
    # the deep-input verdict depends on the parser limits too
    h.update(f"summary-{SUMMARY_VERSION}-{e.MAX_PARSE_DEPTH}-{e.MAX_PARSE_NODES}\0".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _cache_file(key: str) -> Path:
    from recipecheck import __version__
    from recipecheck.engine import cache_dir

    return cache_dir() / __version__ / "summaries" / key[:2] / f"{key}.json"


def _valid(s) -> bool:
    """A summary read from disk is trusted only when it has the expected shape."""
    if not isinstance(s, dict) or s.get("v") != SUMMARY_VERSION:
        return False
    deep = s.get("deep")
    if deep is not None and not (isinstance(deep, list) and len(deep) == 3):
        return False
    return (isinstance(s.get("functions"), list) and isinstance(s.get("classes"), dict)
            and isinstance(s.get("imports"), list) and isinstance(s.get("uses"), dict)
            and isinstance(s.get("training"), dict) and isinstance(s.get("lines"), list)
            and all(type(n) is int for n in s["lines"])
            and isinstance(s.get("stmts"), list)
            and all(isinstance(x, list) and len(x) == 3 and type(x[0]) is int and type(x[1]) is int
                    and isinstance(x[2], str) for x in s["stmts"])
            and all(isinstance(v, list) for v in s["uses"].values()))


def _read_disk(key: str) -> dict | None:
    try:
        f = _cache_file(key)
        if not f.is_file():
            return None
        s = json.loads(f.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - unreadable or corrupt: computed again
        return None
    return s if _valid(s) else None


def _write_disk(key: str, s: dict) -> None:
    from recipecheck.writing import cache_write

    try:
        f = _cache_file(key)
    except OSError:  # an unusable cache is skipped, never an error
        return
    cache_write(f, json.dumps(s, separators=(",", ":")))


def summary_of(text: str) -> dict | None:
    """The summary of a module's text (None when CPython's parser rejects it as invalid)."""
    key = content_key(text)
    if key in _MEMO:
        return _MEMO[key]
    s = _read_disk(key) if _disk else None
    if s is not None:
        stats["disk_hits"] += 1
    else:
        s = compute(text)
        stats["computed"] += 1
        if _disk and s is not None:
            _write_disk(key, s)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[key] = s
    return s


def too_deep(text: str) -> tuple[int, int, str] | None:
    """`engine.too_deep_for_parser`, answered from the (cached) summary."""
    s = summary_of(text)
    if s is None:
        return None
    d = s["deep"]
    return (d[0], d[1], d[2]) if d is not None else None


def reset() -> None:
    _MEMO.clear()
    stats["computed"] = stats["disk_hits"] = 0


# --------------------------------------------------------------------------- computing one


def _empty(deep=None) -> dict:
    return {"v": SUMMARY_VERSION, "deep": deep, "functions": [], "classes": {}, "imports": [],
            "uses": {}, "training": {}, "lines": [], "stmts": []}


def compute(text: str) -> dict | None:
    from recipecheck import engine as e

    old = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(e._CPYTHON_RECURSION_LIMIT)
    except RecursionError:  # called from deep inside a stack: parse with the current limit
        old = None
    try:
        tree = compile(text, "<recipecheck>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except RecursionError:
        return _empty([1, 1, "it is nested too deeply for Python's parser (maximum recursion depth exceeded)"])
    except MemoryError:
        return _empty([1, 1, "it is too large or nested too deeply for Python's parser (out of memory)"])
    except SyntaxError as exc:
        msg = str(exc.msg or "")
        if any(m in msg for m in e._TOO_DEEP_MESSAGES):
            return _empty([exc.lineno or 1, max(exc.offset or 1, 1), f"Python's parser rejects it: {msg}"])
        return None
    except (ValueError, TypeError):
        return None
    finally:
        if old is not None:
            sys.setrecursionlimit(old)
    return _Walk(tree, check_depth=len(text) >= e._MIN_DEEP_TEXT).summary()


def _dotted(node) -> str | None:
    parts = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    if type(node) is ast.Name:
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _looks_like_module(bases: list[str]) -> bool:
    return any(b.rsplit(".", 1)[-1] in ("Module", "LightningModule") or b.endswith("nn.Module")
               for b in bases)


class _Walk:
    """One pass over CPython's AST: node count and depth (the deep-input check) together with
    the index. Iterative: the AST of an accepted file can still be thousands of levels deep."""

    def __init__(self, tree: ast.Module, check_depth: bool) -> None:
        self.tree = tree
        self.check_depth = check_depth

    def summary(self) -> dict:
        from recipecheck import engine as e

        s = _empty()
        uses: dict[str, set[str]] = {}
        training: dict[str, set[str]] = {}
        limit = e.MAX_PARSE_NODES
        nodes = depth = 1  # the Module node
        Name, Attribute, If, Call = ast.Name, ast.Attribute, ast.If, ast.Call
        fields_of = _child_fields
        # stack items: (node, depth, the set of names its owner uses, owner of training events)
        stack: list[tuple] = [(n, d, uses.setdefault(owner, set()), fo)
                              for n, d, owner, fo in reversed(self._top_statements(s))]
        pop, push = stack.pop, stack.append
        while stack:
            node, d, used, fowner = pop()
            nodes += 1
            if d > depth:
                depth = d
            if nodes > limit:
                break
            t = type(node)
            if t is Name:
                used.add(node.id)
                nodes += 1  # its ctx
                if d + 1 > depth:
                    depth = d + 1
                continue
            if t is Attribute:
                dotted = _dotted(node)
                if dotted is not None:
                    used.add(dotted)
                    k = dotted.count(".")  # attributes, each with its ctx, then the name and its ctx
                    nodes += 2 * k + 1
                    if d + k + 1 > depth:
                        depth = d + k + 1
                    continue
            elif t is Call and fowner is not None:
                self._training(node, fowner, training)
            elif t is If and len(node.orelse) == 1 and type(node.orelse[0]) is If:
                # an `elif` is a sibling branch to libcst, not a level (as engine._ast_size)
                push((node.orelse[0], d, used, fowner))
                push((node.test, d + 1, used, fowner))
                for c in node.body:
                    push((c, d + 1, used, fowner))
                continue
            d1 = d + 1
            nodes_fields, ctx = fields_of(t)
            if ctx:  # an expression context (Load/Store/Del) is a leaf: counted, not walked
                nodes += 1
                if d1 > depth:
                    depth = d1
            for field in nodes_fields:
                v = getattr(node, field, None)
                if type(v) is list:
                    for c in v:
                        if c is not None and type(c) is not str:
                            push((c, d1, used, fowner))
                elif v is not None:
                    push((v, d1, used, fowner))
        if self.check_depth and depth > e.MAX_PARSE_DEPTH:
            return _empty([1, 1, f"it is nested {depth} levels deep, more than the linter's parser "
                               f"handles ({e.MAX_PARSE_DEPTH}; libcst's time and memory grow with "
                               "the square of it)"])
        if nodes > limit:
            return _empty([1, 1, f"it has more than {limit} syntax nodes, more than the linter's "
                               "parser handles in bounded memory"])
        s["uses"] = {k: sorted(v) for k, v in uses.items() if v}
        s["training"] = {k: sorted(v) for k, v in training.items()}
        return s

    def _top_statements(self, s: dict) -> list[tuple]:
        """The module's statements as walk items, recording the definitions on the way
        (methods are walked with their class as the owner of their uses)."""
        items: list[tuple] = []
        s["lines"] = [st.lineno for st in self.tree.body]
        for st in self.tree.body:
            d = 2  # the Module node is level 1 (as engine._ast_size counts)
            t = type(st)
            first = min([st.lineno, *(x.lineno for x in getattr(st, "decorator_list", ()))])
            last = getattr(st, "end_lineno", None) or st.lineno
            if t in (ast.FunctionDef, ast.AsyncFunctionDef):
                s["stmts"].append([first, last, st.name])
                s["functions"].append(st.name)
                items.append((st, d, st.name, st.name))
            elif t is ast.ClassDef:
                s["stmts"].append([first, last, st.name])
                bases = [b for b in (_dotted(x) for x in st.bases) if b]
                methods = [m.name for m in st.body if type(m) in (ast.FunctionDef, ast.AsyncFunctionDef)]
                s["classes"][st.name] = {"bases": bases, "methods": methods,
                                         "module": _looks_like_module(bases),
                                         "layers": _builds_layers(st)}
                # methods: training events owned by `Class.method`
                items.append((_ClassShell(st), d, st.name, None))
                for m in st.body:
                    if type(m) in (ast.FunctionDef, ast.AsyncFunctionDef):
                        items.append((m, d + 1, st.name, f"{st.name}.{m.name}"))
                    else:
                        items.append((m, d + 1, st.name, None))
            else:
                if t is ast.Import:
                    for a in st.names:
                        local = a.asname or a.name.split(".")[0]
                        s["imports"].append([a.name, 0, None, local])
                elif t is ast.ImportFrom:
                    for a in st.names:
                        if a.name != "*":
                            s["imports"].append([st.module or "", st.level, a.name, a.asname or a.name])
                owner = MAIN_CODE if _is_main_guard(st) else MODULE_CODE
                s["stmts"].append([first, last, owner])
                # training events of the main block stay module-level (what the module does)
                items.append((st, d, owner, MODULE_CODE))
        return items

    @staticmethod
    def _training(call: ast.Call, owner: str, training: dict[str, set[str]]) -> None:
        f = call.func
        if type(f) is ast.Attribute and f.attr in _TRAINING_ATTRS:
            training.setdefault(owner, set()).add(_TRAINING_ATTRS[f.attr])
            return
        d = _dotted(f)
        if d is None:
            return
        if d.startswith(_SCHEDULER_HINTS) or ".lr_scheduler." in d:
            training.setdefault(owner, set()).add("scheduler")
        elif d.startswith(_OPTIMIZER_HINTS) or ".optim." in d:
            training.setdefault(owner, set()).add("optimizer")


def _is_main_guard(st) -> bool:
    """`if __name__ == "__main__":` (either side of the comparison)."""
    if type(st) is not ast.If or type(st.test) is not ast.Compare:
        return False
    t = st.test
    if len(t.ops) != 1 or type(t.ops[0]) is not ast.Eq:
        return False
    sides = [t.left, t.comparators[0]]
    return (any(type(x) is ast.Name and x.id == "__name__" for x in sides)
            and any(type(x) is ast.Constant and x.value == "__main__" for x in sides))


_FIELDS: dict[type, tuple[tuple[str, ...], bool]] = {}


def _child_fields(t: type) -> tuple[tuple[str, ...], bool]:
    """The fields of an AST node type that hold nodes, and whether it has an expression
    context: the others hold names, numbers and flags (`FunctionDef.name`, `Constant.value`)."""
    got = _FIELDS.get(t)
    if got is None:
        probe = _NODE_FIELDS.get(t.__name__)
        names = tuple(f for f in t._fields if f != "ctx" and (probe is None or f in probe))
        got = _FIELDS[t] = (names, "ctx" in t._fields)
    return got


# fields that never hold a node, by node type (a str or int or constant value)
_SCALAR_FIELDS = {"id", "attr", "name", "arg", "asname", "module", "level", "type_comment",
                  "is_async", "conversion", "simple", "kind", "n", "s", "value_str"}
_NODE_FIELDS: dict[str, set[str]] = {}
for _t in (getattr(ast, n) for n in dir(ast)):
    if isinstance(_t, type) and issubclass(_t, ast.AST) and getattr(_t, "_fields", None):
        _NODE_FIELDS[_t.__name__] = {f for f in _t._fields if f not in _SCALAR_FIELDS}
# Constant.value is a Python value (never a node); MatchSingleton too
_NODE_FIELDS["Constant"] = set()
_NODE_FIELDS["MatchSingleton"] = set()
_NODE_FIELDS["Global"] = _NODE_FIELDS["Nonlocal"] = set()  # lists of names (str)


class _ClassShell(ast.AST):
    """A class statement without its methods' bodies (walked separately, with their owner):
    its decorators, bases and keywords."""

    _fields = ("decorator_list", "bases", "keywords")

    def __init__(self, node: ast.ClassDef) -> None:
        super().__init__()
        self.decorator_list = node.decorator_list
        self.bases = node.bases
        self.keywords = node.keywords


def _builds_layers(cls: ast.ClassDef) -> bool:
    """`__init__` constructs `nn.*` modules (or calls a constructor through `self.x = ...`)."""
    for m in cls.body:
        if type(m) is ast.FunctionDef and m.name == "__init__":
            for n in ast.walk(m):
                if type(n) is ast.Call:
                    d = _dotted(n.func) or ""
                    if d.startswith(("nn.", "torch.nn.")) and d.rsplit(".", 1)[-1][:1].isupper():
                        return True
    return False


# --------------------------------------------------------------------------- queries


def defines(s: dict | None, name: str) -> bool:
    return s is not None and (name in s["functions"] or name in s["classes"])


def used_names(s: dict) -> set[str]:
    """Every name and attribute chain the module reads, anywhere."""
    out: set[str] = set()
    for v in s["uses"].values():
        out.update(v)
    return out


def view_owners(s: dict, names: frozenset[str] | None) -> set[str]:
    """The owners (see ``stmts``) of a neighbour's statements that reading `names` from it
    needs when it is imported: module-level code always (it runs on import; the main block
    never), the definitions named, and every definition those read, transitively. `names`
    None: the module as a whole (its object is passed around, or `import *`)."""
    defined = {o for _, _, o in s["stmts"] if o not in (MODULE_CODE, MAIN_CODE)}
    if names is None:
        return defined | {MODULE_CODE}
    keep = {MODULE_CODE}
    todo = [MODULE_CODE, *(n for n in names if n in defined)]
    while todo:
        o = todo.pop()
        if o in keep and o != MODULE_CODE:
            continue
        keep.add(o)
        for u in s["uses"].get(o, ()):
            head = u.split(".", 1)[0]
            if head in defined and head not in keep:
                todo.append(head)
    return keep


def view_lines(s: dict, owners: set[str]) -> list[tuple[int, int]] | None:
    """The line ranges of the statements of `owners` (None: every statement is kept)."""
    kept = [(a, b) for a, b, o in s["stmts"] if o in owners]
    if len(kept) == len(s["stmts"]):
        return None
    return kept


def uses_of(s: dict, owners: set[str] | None) -> set[str]:
    """The names and attribute chains the statements of `owners` read (None: all of them)."""
    out: set[str] = set()
    for o, v in s["uses"].items():
        if owners is None or o in owners:
            out.update(v)
    return out
