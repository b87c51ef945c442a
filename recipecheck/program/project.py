"""Project resolution: which files of the user's project a linted file imports.

Stage 2 of the pipeline (see DESIGN.md, "The project, not the file"). The project root is the
nearest directory above the file holding pyproject.toml, setup.py, setup.cfg or .git (else the
file's own directory). Imports are resolved against the file's directory, the root and the
root's ``src/`` folder; relative imports against the file's package. Third-party modules are not
found there and stay symbolic.

Imports are read by a text scan, not a parse, so that a warm cache lookup (which must know the
neighbours' contents to build its key) never pays for libcst. The same scan decides which files
the linker reads, so the cache key and the analysis always agree on the neighbour set.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
MAX_MODULES = 256  # neighbour modules read for one linted file (the whole import closure)

_FROM_RE = re.compile(
    r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^#\n]*(?:\\\n[^#\n]*)*)", re.M)
_IMPORT_RE = re.compile(r"^[ \t]*import[ \t]+([^#\n]+)", re.M)


@dataclass(frozen=True)
class ImportRef:
    """One imported name: `import a.b as m` -> ("a.b", 0, None, "m");
    `from .x import y as z` -> ("x", 1, "y", "z")."""

    module: str
    level: int
    name: str | None
    local: str


def scan_imports(text: str) -> list[ImportRef]:
    out: list[ImportRef] = []
    for m in _FROM_RE.finditer(text):
        dots, module, names = m.group(1), m.group(2), m.group(3)
        names = names.strip().strip("()").replace("\\\n", " ")
        for part in names.split(","):
            part = part.strip()
            if not part or part == "*":
                continue
            bits = part.split()
            name = bits[0]
            local = bits[2] if len(bits) == 3 and bits[1] == "as" else name
            if name.isidentifier() and local.isidentifier():
                out.append(ImportRef(module, len(dots), name, local))
    for m in _IMPORT_RE.finditer(text):
        for part in m.group(1).split(";")[0].split(","):
            bits = part.strip().split()
            if not bits:
                continue
            module = bits[0]
            if not all(p.isidentifier() for p in module.split(".")):
                continue
            local = bits[2] if len(bits) == 3 and bits[1] == "as" else module.split(".")[0]
            out.append(ImportRef(module, 0, None, local))
    return out


@lru_cache(maxsize=4096)
def find_root(directory: str) -> str:
    """The nearest directory at or above `directory` with a project marker, else `directory`."""
    d = Path(directory).resolve()
    for cand in (d, *d.parents):
        if any((cand / m).exists() for m in ROOT_MARKERS):
            return str(cand)
    return str(d)


def _module_file(base: Path, parts: list[str]) -> Path | None:
    got = _module_file_str(str(base), tuple(parts))
    return Path(got) if got is not None else None


@lru_cache(maxsize=65536)
def _module_file_str(base: str, parts: tuple[str, ...]) -> str | None:
    # plain os.path: pathlib's object churn dominated import resolution in large projects
    p = os.path.join(base, *parts)
    if parts:
        f = p + ".py"
        if os.path.isfile(f):
            return f
    init = os.path.join(p, "__init__.py")
    return init if os.path.isfile(init) else None


@dataclass(frozen=True)
class Target:
    """What an imported local name stands for: a project module, or an attribute of one."""

    path: str  # the module's file
    attr: str | None  # None: the name is the module itself


class Project:
    """Import resolution for the files under one root."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def _bases(self, file: Path) -> list[Path]:
        out = [file.parent, self.root]
        src = self.root / "src"
        if src.is_dir():
            out.append(src)
        seen: list[Path] = []
        for b in out:
            if b not in seen:
                seen.append(b)
        return seen

    def _inside(self, f: Path) -> bool:
        rp = os.path.realpath(f)
        root = str(self.root)
        return (rp == root or rp.startswith(root.rstrip(os.sep) + os.sep)) and "site-packages" not in rp

    def resolve(self, ref: ImportRef, file: Path) -> Target | None:
        """The project target of one import, or None (third party, missing)."""
        mod_parts = [p for p in ref.module.split(".") if p]
        if ref.level:
            base = file.parent
            for _ in range(ref.level - 1):
                base = base.parent
            bases = [base]
        else:
            bases = self._bases(file)
        for base in bases:
            if ref.name is None:
                # `import a.b.c` binds `a`; `import a.b.c as m` binds the leaf module
                full = _module_file(base, mod_parts)
                if full is None:
                    continue
                if ref.local == mod_parts[0] and len(mod_parts) > 1:
                    top = _module_file(base, mod_parts[:1])
                    if top is None:  # namespace package: bind the leaf through a pseudo path
                        return self._ok(Target(str(full), None), full)
                    return self._ok(Target(str(top), None), top)
                return self._ok(Target(str(full), None), full)
            sub = _module_file(base, [*mod_parts, ref.name])
            if sub is not None:
                return self._ok(Target(str(sub), None), sub)
            mod = _module_file(base, mod_parts)
            if mod is not None:
                return self._ok(Target(str(mod), ref.name), mod)
        return None

    def _ok(self, t: Target, f: Path) -> Target | None:
        if not self._inside(f):
            return None
        return t

    def submodule(self, package_file: str, name: str) -> str | None:
        """`pkg/__init__.py` + `name` -> the file of `pkg.name`, if there is one."""
        p = Path(package_file)
        if p.name != "__init__.py":
            return None
        f = _module_file(p.parent, [name])
        return str(f) if f is not None and self._inside(f) else None


@lru_cache(maxsize=64)
def project_for(root: str) -> Project:
    return Project(root)


def project_of(path: str) -> Project | None:
    """The project of a file on disk (None for a path that is not a file: an in-memory source)."""
    p = Path(path)
    if not p.is_file():
        return None
    return project_for(find_root(os.path.dirname(os.path.abspath(path))))


_TEXTS: dict[str, tuple[tuple[int, int], str]] = {}


def read_text(path: str) -> str | None:
    """The file's text; read again only when its modification time or size changed (the link
    asks for a neighbour's text each time a file that uses it is linted)."""
    try:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        got = _TEXTS.get(path)
        if got is not None and got[0] == stamp:
            return got[1]
        data = Path(path).read_bytes()
    except OSError:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if len(_TEXTS) > 4096:
        _TEXTS.clear()
    _TEXTS[path] = (stamp, text)
    return text


_BINDINGS: dict[tuple[str, str, int], dict[str, Target]] = {}


def _memo(cache: dict, compute, project: "Project", path: str, text: str):
    """`compute(project, path, text)`, memoized by project root, file and content."""
    key = (str(project.root), os.path.abspath(path), hash(text))
    got = cache.get(key)
    if got is None:
        if len(cache) > 8192:
            cache.clear()
        got = cache[key] = compute(project, path, text)
    return got


def bindings(project: Project, path: str, text: str) -> dict[str, Target]:
    """Local name -> project target for every project import in one file (memoized by content)."""
    return _memo(_BINDINGS, _bindings, project, path, text)


def _bindings(project: Project, path: str, text: str) -> dict[str, Target]:
    out: dict[str, Target] = {}
    file = Path(os.path.abspath(path))  # targets are absolute: the link keys modules by them
    for ref in scan_imports(text):
        t = project.resolve(ref, file)
        if t is not None and os.path.abspath(t.path) != os.path.abspath(path):
            out[ref.local] = t
    return out


def neighbours(path: str, text: str) -> list[str]:
    """Project files read to analyse `path`, breadth first (imports of imports included)."""
    project = project_of(path)
    if project is None:
        return []
    me = os.path.abspath(path)
    seen: dict[str, int] = {}
    queue = [(path, text, 0)]
    while queue:
        cur, cur_text, depth = queue.pop(0)
        for t in bindings(project, cur, cur_text).values():
            p = os.path.abspath(t.path)
            if p == me or p in seen or len(seen) >= MAX_MODULES:
                continue
            seen[p] = depth + 1
            nt = read_text(p)
            if nt is not None:
                queue.append((p, nt, depth + 1))
    return list(seen)


def dependency_digest(path: str, text: str) -> str:
    """A digest of the neighbours' paths and contents: part of the lint cache key."""
    h = hashlib.sha256()
    for n in sorted(neighbours(path, text)):
        h.update(n.encode())
        h.update(b"\0")
        try:
            h.update(Path(n).read_bytes())
        except OSError:
            h.update(b"<missing>")
        h.update(b"\0")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- used neighbours

def new_run() -> None:
    """Forget what was read from disk: a new lint run sees every file as it is now (within a
    run, files are taken not to change)."""
    _TEXTS.clear()
    _NEEDS.clear()


def module_deps(project: Project, path: str, text: str) -> list[str]:
    """The project modules that `path`'s code actually reads a name from, in import order.

    A name imported from a module and never used informs nothing, so its module is not read
    (a plain `import module` never used is, for its import-time effects). A used name is followed through packages the way the linker resolves it: `from pkg import
    Trainer` re-exported by `pkg/__init__.py` from `pkg/trainer.py` needs both files, and
    `import a.b` used as `a.b.c.f()` needs `a/b/c.py`. Decided on the modules' summaries
    (:mod:`recipecheck.program.summary`), without parsing any of them with libcst.
    """
    return list(module_needs(project, path, text))


Need = "frozenset[str] | None"  # names read from a module; None: the module as a whole
_NEEDS: dict[tuple, dict] = {}


def module_needs(project: Project, path: str, text: str,
                 owners: frozenset[str] | None = None) -> dict[str, "frozenset[str] | None"]:
    """What the statements of `owners` in the module at `path` (see ``summary.stmts``; None:
    the whole module, as for the linted file) read from other project modules: module path ->
    the names read from it (None: the module object as a whole), in import order.

    Like :func:`module_deps` (whose answer is this one's keys), decided on summaries alone."""
    key = (str(project.root), os.path.abspath(path), hash(text), owners)
    got = _NEEDS.get(key)
    if got is None:
        if len(_NEEDS) > 8192:
            _NEEDS.clear()
        got = _NEEDS[key] = _module_needs(project, path, text, owners)
    return got


def _module_needs(project: Project, path: str, text: str, owners) -> dict:
    from recipecheck.program.summary import summary_of, uses_of

    binds = bindings(project, path, text)
    if not binds:
        return {}
    s = summary_of(text)
    me = os.path.abspath(path)
    if s is None:  # CPython cannot read it: every import may matter, as a whole
        return {t.path: None for t in binds.values() if t.path != me}
    used = uses_of(s, set(owners) if owners is not None else None)
    heads: dict[str, list[list[str]]] = {}
    for u in used:
        head, *rest = u.split(".")
        if head in binds:
            heads.setdefault(head, []).append(rest)
    # `import models` whose name the code never reads is there for what the module does when
    # imported (registering model classes with a factory): it is read, its own imports only
    # as far as it uses them
    side_effect = {r.local for r in scan_imports(text) if r.name is None and r.local == r.module.split(".")[0]}
    out: dict[str, frozenset[str] | None] = {}
    for local, t in binds.items():  # in import order
        if local not in heads and local in side_effect:
            _add(out, t.path, None)  # what it registers is all of it
        for rest in sorted(heads.get(local, ())):
            _need(project, out, t.path, ([t.attr] if t.attr else []) + rest, 0)
    out.pop(me, None)
    return out


def _add(out: dict, path: str, names) -> None:
    if path in out:
        old = out[path]
        out[path] = None if old is None or names is None else old | names
    else:
        out[path] = names


def _need(project: Project, out: dict, path: str, parts: list[str], depth: int) -> None:
    """Record that `parts` is read from the module at `path`, following re-exports and
    submodules the way ProjectLink resolves them."""
    from recipecheck.program.summary import defines, summary_of

    if not parts:
        _add(out, path, None)
        return
    name = parts[0]
    if name.startswith("__") and name.endswith("__"):  # `module.__dict__[name]`: any of it
        _add(out, path, None)
        return
    _add(out, path, frozenset((name,)))
    if depth > 8:
        return
    text = read_text(path)
    if text is None:
        return
    if defines(summary_of(text), name):
        return
    t = bindings(project, path, text).get(name)
    if t is not None:  # a re-export: `from .trainer import Trainer` in a package
        _need(project, out, t.path, ([t.attr] if t.attr else []) + parts[1:], depth + 1)
        return
    sub = project.submodule(path, name)
    if sub is not None:
        _need(project, out, sub, parts[1:], depth + 1)
