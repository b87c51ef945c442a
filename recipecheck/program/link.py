"""The project link: one program model per imported project module, connected.

Stage 3 of the pipeline (DESIGN.md, "The project, not the file"). For a linted file, every
project module whose names its code reads (transitively: the modules those read from, and so
on; decided on the modules' cached summaries, see :func:`recipecheck.program.project.module_deps`
and :mod:`recipecheck.program.summary`) gets its own :class:`ProgramModel`, parsed, built and
linked once per process and shared by every file that uses it (again only when its content
changes; parses are kept by content hash and reused when the module is itself linted). A module
imported but never used is not parsed at all. Then:

- names imported from project modules resolve to the functions and classes of those modules
  (:meth:`ProjectLink.lookup`, following re-exports in packages' ``__init__.py``);
- every model sees the classes of the modules it uses by name, so a model class defined in
  ``model.py`` is a local class for ``train.py``: its layers, its methods
  (``configure_optimizers``), its bases;
- calls into other modules are linked like calls to the file's own functions, so the expanded
  view inlines ``engine.train_one_epoch`` into the epoch loop of ``main``.

Only the linted file's own functions are roots of the expanded view, and findings on nodes of
other modules are dropped by the engine: neighbours inform, they are never reported.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict

import libcst as cst

from recipecheck.program.model import ClassInfo, FunctionInfo, ProgramModel, _Builder, build_program
from recipecheck.program.project import (MAX_MODULES, Project, bindings, module_deps, project_of,
                                         read_text)

_PARSED: "OrderedDict[tuple[str, str], cst.Module | None]" = OrderedDict()
_PARSED_MAX = 512


def _key(path: str, text: str) -> tuple[str, str]:
    return (os.path.abspath(path), hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest())


def remember_parse(path: str, text: str, module: cst.Module) -> None:
    """Keep the linted file's parse: when another file imports it, it is not parsed again."""
    _PARSED[_key(path, text)] = module
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)


def known_parse(path: str, text: str) -> cst.Module | None:
    """A parse of this exact content made earlier in the process (as a neighbour), if any."""
    return _PARSED.get(_key(path, text))


def parse_cached(path: str, text: str) -> cst.Module | None:
    """The parse of a neighbour, reused by content hash within the process (None: unparsable)."""
    key = _key(path, text)
    if key in _PARSED:
        _PARSED.move_to_end(key)
        return _PARSED[key]
    from recipecheck.program.summary import too_deep

    try:  # a neighbour too deep for libcst would crash the process: it informs nothing
        mod: cst.Module | None = None if too_deep(text) else cst.parse_module(text)
    except Exception:  # a broken neighbour only informs less
        mod = None
    _PARSED[key] = mod
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return mod


class ProjectLink:
    """The neighbour modules of one project root, by file path, shared by every file linted in
    the process: each module is parsed, built and linked once (again only when its content
    changes). The linted file's own model is built fresh and never shared; what it adds to the
    neighbours (links through its objects) is undone by :func:`release`."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.programs: dict[str, ProgramModel] = {}
        self._hashes: dict[str, int] = {}

    def program(self, path: str) -> ProgramModel | None:
        """The neighbour-role model of the module at `path` (built with its imports)."""
        text = read_text(path)
        if text is None:
            return None
        h = hash(text)
        prog = self.programs.get(path)
        if prog is not None and self._hashes.get(path) == h:
            return prog
        mod = parse_cached(path, text)
        if mod is None:
            return None
        try:
            prog = _new_program(mod, path, self.project, text, self)
        except RecursionError:
            return None
        self.programs[path] = prog
        self._hashes[path] = h
        prog.own_classes = dict(prog.classes)
        prog.deps = module_deps(self.project, path, text)
        for p in prog.deps:  # used modules first (a cycle sees a partial model)
            dep = self.program(p)
            if dep is not None and dep is not prog:
                _merge_classes(prog, dep)
        prog._link()
        return prog

    def closure(self, prog: ProgramModel, text: str | None = None) -> list[ProgramModel]:
        """The modules `prog` (whose source is `text`; read from its file when not given) reads
        names from, transitively: only these are parsed and built (an import the code never
        uses is not followed)."""
        out: list[ProgramModel] = []
        seen: set[str] = {prog.path} if prog.path else set()
        if getattr(prog, "deps", None) is not None:  # a neighbour: known since it was built
            queue = list(prog.deps)
        elif prog.path and (text := text if text is not None else read_text(prog.path)) is not None:
            queue = list(module_deps(self.project, prog.path, text))
        else:
            queue = []
        while queue and len(out) < MAX_MODULES:
            path = queue.pop(0)
            if path in seen:
                continue
            seen.add(path)
            dep = self.program(path)
            if dep is not None:
                out.append(dep)
                queue.extend(getattr(dep, "deps", ()))
        return out

    def lookup(self, prog: ProgramModel, dotted: str) -> FunctionInfo | ClassInfo | None:
        """What `dotted`, written in `prog`'s module, names in another project module."""
        head, *rest = dotted.split(".")
        t = prog.imports.project.get(head)
        if t is None:
            return None
        return self._resolve_in(t.path, ([t.attr] if t.attr else []) + rest, 0)

    def _resolve_in(self, path: str, parts: list[str], depth: int):
        if not parts or depth > 8:
            return None
        name = parts[0]
        m = self.programs.get(path) or self.program(path)
        if m is not None:
            own = getattr(m, "own_classes", m.classes)
            if name in own:
                cls = own[name]
                if len(parts) == 1:
                    return cls
                return m.class_method(cls, parts[1]) if len(parts) == 2 else None
            fn = m.functions.get(name)
            if fn is not None and fn.cls is None and len(parts) == 1:
                return fn
            t = m.imports.project.get(name)
            if t is not None:  # re-export: `from .trainer import Trainer` in a package
                return self._resolve_in(t.path, ([t.attr] if t.attr else []) + parts[1:], depth + 1)
        sub = self.project.submodule(path, name)
        if sub is not None:
            return self._resolve_in(sub, parts[1:], depth + 1)
        return None


def _merge_classes(prog: ProgramModel, other: ProgramModel) -> None:
    for name, c in getattr(other, "own_classes", other.classes).items():
        if name not in prog.classes:
            prog.classes[name] = c
            prog.foreign_classes.add(name)


def _new_program(module: cst.Module, path: str, project: Project, text: str,
                 link: ProjectLink) -> ProgramModel:
    prog = ProgramModel(module)
    prog.path = path
    prog.link = link
    prog.imports.project = bindings(project, path, text)
    _Builder(prog).walk(module)
    return prog


_LINKS: dict[str, ProjectLink] = {}


def link_for(project: Project) -> ProjectLink:
    key = str(project.root)
    link = _LINKS.get(key)
    if link is None:
        if len(_LINKS) > 16:
            _LINKS.clear()
        link = _LINKS[key] = ProjectLink(project)
    return link


class _MainLink:
    """The linted file's view of the shared link: only the modules of its import closure."""

    def __init__(self, shared: ProjectLink, programs: dict[str, ProgramModel]) -> None:
        self.shared = shared
        self.project = shared.project
        self.programs = programs

    def lookup(self, prog: ProgramModel, dotted: str):
        return self.shared.lookup(prog, dotted)

    def program(self, path: str) -> ProgramModel | None:
        return self.shared.program(path)


def build_linked(module: cst.Module, path: str, text: str) -> ProgramModel:
    """The program model of `module` (the file at `path`), linked with its project's modules.

    Falls back to the single-file model when the path is not a file on disk or nothing it
    imports belongs to the project.
    """
    project = project_of(path)
    if project is None:
        return build_program(module)
    if not bindings(project, path, text):
        return build_program(module)
    shared = link_for(project)
    apath = os.path.abspath(path)
    remember_parse(apath, text, module)
    main = _new_program(module, apath, project, text, shared)
    closure = shared.closure(main, text)
    if not closure:
        return build_program(module)
    main.link = _MainLink(shared, {q.path: q for q in closure})
    main.own_classes = dict(main.classes)
    for q in closure:
        _merge_classes(main, q)
    # torch names used in other modules (`nn`, `F`) resolve as there: in real projects the
    # same alias means the same module everywhere, and the file's own imports win
    for q in closure:
        for k, v in q.imports.aliases.items():
            if k not in main.imports.aliases and k not in main.imports.project:
                main.imports.aliases[k] = v
    main._link()
    for q in closure:  # constructors called in other modules (CapWords: class names)
        ctors = q.__dict__.get("_ctor_calls")
        if ctors is None:  # a shared neighbour: the same for every file that uses it
            ctors = q.__dict__["_ctor_calls"] = [
                cs for cs in q.calls if cs.qualname is None and cs.dotted and
                cs.dotted.rsplit(".", 1)[-1][:1].isupper()]
        main.map_constructor_args(ctors)
    # parameters of other modules' functions now map to the file's arguments: objects passed
    # in (a loss scaler, a wrapper) can be followed into their classes' methods
    main._undo = []
    for _ in range(3):
        main._eval_memo.clear()
        main._call_memo.clear()
        foreign = [f for f in _reachable(main) if f.program is not main]
        if not main.link_instance_calls(foreign, undo=main._undo):
            break
    main._eval_memo.clear()
    main._call_memo.clear()
    return main


def _reachable(main: ProgramModel) -> list[FunctionInfo]:
    out = list(main.functions.values())
    seen = set(map(id, out))
    i = 0
    while i < len(out):
        for ev in out[i].events:
            c = ev.callee
            if c is not None and id(c) not in seen:
                seen.add(id(c))
                out.append(c)
        i += 1
    return out


def reset_caches() -> None:
    """Forget every parse, summary and neighbour model kept in this process (benchmarks,
    tests)."""
    _PARSED.clear()
    _LINKS.clear()
    from recipecheck.program import project, summary

    project.new_run()
    summary.reset()


def release(program: ProgramModel) -> None:
    """Undo the links the linted file made inside shared neighbour models."""
    for ev in getattr(program, "_undo", ()) or ():
        ev.callee = None
    program._undo = []
