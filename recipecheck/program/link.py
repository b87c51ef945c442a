"""The project link: the project modules a linted file imports, read as far as it uses them.

Stage 3 of the pipeline (DESIGN.md, "The project, not the file"). For a linted file, every
project module whose names its code reads (decided on the modules' cached summaries, see
:func:`recipecheck.program.project.module_needs` and :mod:`recipecheck.program.summary`) is read
as a *view*: only the statements that reading those names needs (module-level code, the
definitions named and what they use within the module, transitively; never the
``if __name__ == "__main__":`` block), built as a :class:`ProgramModel` once per (file,
content, names) and shared by every file that reads the same names. Its statements come from
the module's whole parse when the process has one (the module was linted before: jobs are
ordered so that it usually was), else each kept statement is parsed alone, once per process.
A view links to the views its own statements read from, and so on: a module imported but
never used is not parsed at all, and a helper module of fifty functions costs the two the
file calls.
Then:

- names imported from project modules resolve to the functions and classes of those views
  (:meth:`ProjectLink.lookup`, following re-exports in packages' ``__init__.py``);
- every model sees the classes of the views it reads, so a model class defined in
  ``model.py`` is a local class for ``train.py``: its layers, its methods
  (``configure_optimizers``), its bases;
- calls into other modules are linked like calls to the file's own functions, so the expanded
  view inlines ``engine.train_one_epoch`` into the epoch loop of ``main``.

Only the linted file's own functions are roots of the expanded view, and findings on nodes of
other modules are dropped by the engine: neighbours inform, they are never reported.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from collections import OrderedDict

import libcst as cst

from recipecheck.program.model import ClassInfo, FunctionInfo, ProgramModel, _Builder, build_program
from recipecheck.program.project import (MAX_MODULES, Project, bindings, module_needs, project_of,
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


def parse_cached(path: str, text: str, checked: bool = False) -> cst.Module | None:
    """The parse of a neighbour, reused by content hash within the process (None: unparsable).
    `checked`: the text is part of a module already found not too deep for libcst."""
    key = _key(path, text)
    if key in _PARSED:
        _PARSED.move_to_end(key)
        return _PARSED[key]
    from recipecheck.program.summary import too_deep

    try:  # a neighbour too deep for libcst would crash the process: it informs nothing
        mod: cst.Module | None = None if not checked and too_deep(text) else cst.parse_module(text)
    except Exception:  # a broken neighbour only informs less
        mod = None
    _PARSED[key] = mod
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return mod


class ProjectLink:
    """The neighbour modules of one project root, shared by every file linted in the process.

    A neighbour is read as a *view*: the statements of the module that reading some names
    from it needs (its module-level code, the definitions named and what they use,
    transitively; decided on the module's summary, :func:`summary.view_owners`), assembled by
    :func:`_view_module` and built once per (file, content, names). A view links to the views of the modules *its*
    statements read from, so a view depends on its file's content and the names alone, never
    on which files were linted before. The linted file's own model is built fresh and never
    shared; what it adds to the neighbours (links through its objects) is undone by
    :func:`release`."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.views: dict[tuple, ProgramModel | None] = {}

    @property
    def programs(self) -> dict[str, ProgramModel]:
        """What a neighbour's own analysis sees of the other modules as a whole: nothing (the
        shared views depend on what was linted before; a neighbour reaches other modules
        through its imports, :meth:`lookup`)."""
        return {}

    def program(self, path: str, names: "frozenset[str] | None" = None) -> ProgramModel | None:
        """The view of the module at `path` that reading `names` from it needs (None: the
        module as a whole), built with the views of what it reads in turn."""
        from recipecheck.program.summary import summary_of, view_lines, view_owners

        text = read_text(path)
        if text is None:
            return None
        key = (path, hash(text), names)
        if key in self.views:
            return self.views[key]
        s = summary_of(text)
        owners: "frozenset[str] | None" = None
        mod: cst.Module | None = None
        first_lines: list[int] | None = None
        if s is not None and not s["deep"]:
            kept = view_owners(s, names)
            if view_lines(s, kept) is not None:
                owners = frozenset(kept)
                got = _view_module(path, text, s, kept)
                if got is not None:
                    mod, first_lines = got
        if mod is None:  # the whole module (also when a view cannot be assembled)
            owners = None
            mod = parse_cached(path, text)
        if mod is None:
            self.views[key] = None
            return None
        try:
            prog = _new_program(mod, path, self.project, text, self)
        except RecursionError:
            self.views[key] = None
            return None
        prog.view_first_lines = first_lines  # each statement's first line in the file
        self.views[key] = prog  # an import cycle back to it sees the model unlinked
        prog.own_classes = dict(prog.classes)
        for dep, need in module_needs(self.project, path, text, owners).items():
            view = self.program(dep, need)  # used modules first
            if view is not None and view is not prog:
                prog.dep_views[dep] = view
                _merge_classes(prog, view)
        try:
            prog._link()
        except RecursionError:
            self.views[key] = None
            return None
        return prog

    def closure(self, prog: ProgramModel, text: str | None = None) -> list[ProgramModel]:
        """The views `prog` (whose source is `text`; read from its file when not given) reads
        names from, transitively, in breadth-first order: only these are parsed and built
        (an import the code never uses is not followed, a definition it never reads not
        parsed)."""
        out: list[ProgramModel] = []
        seen: set[int] = {id(prog)}
        deps = getattr(prog, "dep_views", None)
        if deps is None:
            deps = {}
            if prog.path and (text := text if text is not None else read_text(prog.path)) is not None:
                for dep, need in module_needs(self.project, prog.path, text).items():
                    view = self.program(dep, need)
                    if view is not None and view is not prog:
                        deps[dep] = view
            prog.dep_views = deps
        queue = list(deps.values())
        while queue and len(out) < MAX_MODULES:
            view = queue.pop(0)
            if id(view) in seen:
                continue
            seen.add(id(view))
            out.append(view)
            queue.extend(getattr(view, "dep_views", {}).values())
        return out

    def lookup(self, prog: ProgramModel, dotted: str) -> FunctionInfo | ClassInfo | None:
        """What `dotted`, written in `prog`'s module, names in another project module."""
        head, *rest = dotted.split(".")
        t = prog.imports.project.get(head)
        if t is None:
            return None
        return self._resolve_in(prog, t.path, ([t.attr] if t.attr else []) + rest, 0)

    def view_of(self, prog: ProgramModel, path: str, parts: list[str]) -> ProgramModel | None:
        """The view of `path` that `prog` reads (the one it was built with; when the summaries
        did not foresee the read, the view that reading `parts[0]` needs)."""
        view = getattr(prog, "dep_views", {}).get(path)
        if view is None:
            view = self.program(path, frozenset(parts[:1]) if parts else None)
        return view

    def _resolve_in(self, prog: ProgramModel, path: str, parts: list[str], depth: int):
        if not parts or depth > 8:
            return None
        name = parts[0]
        m = self.view_of(prog, path, parts)
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
                return self._resolve_in(m, t.path, ([t.attr] if t.attr else []) + parts[1:], depth + 1)
            alias = _alias_of(m, name)
            if alias is not None and alias != name:  # `Model = DetectionModel`, kept for old callers
                return self._resolve_in(m, path, alias.split(".") + parts[1:], depth + 1)
        sub = self.project.submodule(path, name)
        if sub is not None:
            return self._resolve_in(m if m is not None else prog, sub, parts[1:], depth + 1)
        return None


_CHUNKS: "OrderedDict[tuple, list[cst.BaseStatement] | None]" = OrderedDict()
_CHUNKS_MAX = 8192


def statement_groups(s: dict) -> list[tuple[int, int, frozenset[str]]]:
    """The summary's top-level statements grouped as libcst's module body holds them (one
    entry per body statement: `a; b` on one line is one), with the owners in each."""
    out: list[tuple[int, int, frozenset[str]]] = []
    for a, b, o in s["stmts"]:
        if out and a <= out[-1][1]:
            pa, pb, po = out[-1]
            out[-1] = (pa, max(pb, b), po | {o})
        else:
            out.append((a, b, frozenset((o,))))
    return out


def _bare(stmt: cst.BaseStatement) -> cst.BaseStatement:
    """The statement without the comments and blank lines above it (what a view holds, from
    whichever parse it comes)."""
    return stmt.with_changes(leading_lines=()) if getattr(stmt, "leading_lines", None) else stmt


def _view_module(path: str, text: str, s: dict, kept: set[str]) -> tuple[cst.Module, list[int]] | None:
    """The module of the statements of `kept` owners and each one's first line in the file.

    The statements come from the module's whole parse when this process has it (the module
    was linted or read whole before), else from parses of the kept statements alone, each
    parsed once per process. Both give the same statements (comments above them dropped), so
    the view does not depend on which files were read before."""
    groups = statement_groups(s)
    keep = [i for i, (_, _, owners) in enumerate(groups) if owners & kept]
    full = known_parse(path, text)
    if full is not None and len(full.body) == len(groups):
        return full.with_changes(body=[_bare(full.body[i]) for i in keep], header=(), footer=()), \
            [groups[i][0] for i in keep]
    lines = _LINES.findall(text)  # with their endings, numbered as CPython numbers them
    h = _key(path, text)
    body: list[cst.BaseStatement] = []
    firsts: list[int] = []
    style: cst.Module | None = None
    for i in keep:
        a, b, _ = groups[i]
        ck = (h, a, b)
        if ck in _CHUNKS:
            _CHUNKS.move_to_end(ck)
            stmts = _CHUNKS[ck]
        else:
            chunk = "".join(lines[a - 1:b])
            try:
                m = cst.parse_module(chunk if chunk.endswith(("\n", "\r")) else chunk + "\n")
                stmts = [_bare(x) for x in m.body]
                style = style or m
            except Exception:  # CPython and libcst disagree on where it ends: read it whole
                stmts = None
            _CHUNKS[ck] = stmts
            if len(_CHUNKS) > _CHUNKS_MAX:
                _CHUNKS.popitem(last=False)
        if stmts is None or len(stmts) != 1:
            return None
        body += stmts
        firsts.append(a)
    cfg = {} if style is None else {"default_indent": style.default_indent,
                                     "default_newline": style.default_newline}
    return cst.Module(body=body, **cfg), firsts


def file_line(prog: ProgramModel, line: int) -> int:
    """A line of `prog.module`'s code as a line of its file (a view holds only some
    statements, and not the comments above them)."""
    firsts = getattr(prog, "view_first_lines", None)
    if not firsts or line <= 0:
        return line
    starts = prog.__dict__.get("_view_starts")
    if starts is None:
        starts, at = [], 1
        for stmt, first in zip(prog.module.body, firsts):
            starts.append((at, first))
            at += prog.module.code_for_node(stmt).count(prog.module.default_newline) or 1
        prog.__dict__["_view_starts"] = starts
    i = bisect.bisect_right(starts, (line, float("inf"))) - 1
    if i < 0:
        return line
    view_start, file_start = starts[i]
    return file_start + line - view_start


_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _alias_of(m: ProgramModel, name: str) -> str | None:
    """`name = Other` (a plain name or dotted name) assigned once at the module's top level."""
    from recipecheck.program.imports import dotted_name

    found = [a for a in m.module_function.assignments if a.target == name and a.augmented is None]
    if len(found) != 1 or found[0].value is None:
        return None
    return dotted_name(found[0].value)


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
    prog.dep_views = {}  # the views of the modules it reads names from (ProjectLink.program)
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
    """The linted file's view of the shared link: only the views of its import closure
    (`programs`: keyed by path, and `path#2`... for a second view of the same module)."""

    def __init__(self, shared: ProjectLink, programs: dict[str, ProgramModel]) -> None:
        self.shared = shared
        self.project = shared.project
        self.programs = programs

    def lookup(self, prog: ProgramModel, dotted: str):
        return self.shared.lookup(prog, dotted)

    def view_of(self, prog: ProgramModel, path: str, parts: list[str]) -> ProgramModel | None:
        return self.shared.view_of(prog, path, parts)

    def program(self, path: str, names: "frozenset[str] | None" = None) -> ProgramModel | None:
        return self.shared.program(path, names)


def build_linked(module: cst.Module, path: str, text: str) -> ProgramModel:
    """The program model of `module` (the file at `path`), linked with its project's modules.

    Falls back to the single-file model when the path is not a file on disk or nothing it
    imports belongs to the project.
    """
    project = project_of(path)
    if project is None:
        return build_program(module)
    apath = os.path.abspath(path)
    remember_parse(apath, text, module)  # files linted later may read statements of it
    if not bindings(project, path, text):
        return build_program(module)
    shared = link_for(project)
    if len(shared.views) > 8 * MAX_MODULES:  # bounded memory in a long run
        shared.views.clear()
    main = _new_program(module, apath, project, text, shared)
    main.dep_views = None  # computed by closure() from the whole file
    closure = shared.closure(main, text)
    if not closure:
        return build_program(module)
    programs: dict[str, ProgramModel] = {}
    for q in closure:
        k, n = q.path, 1
        while k in programs:
            n += 1
            k = f"{q.path}#{n}"
        programs[k] = q
    main.link = _MainLink(shared, programs)
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
    _CHUNKS.clear()
    _LINKS.clear()
    from recipecheck.program import project, summary

    project.new_run()
    summary.reset()


def release(program: ProgramModel) -> None:
    """Undo the links the linted file made inside shared neighbour models."""
    for ev in getattr(program, "_undo", ()) or ():
        ev.callee = None
    program._undo = []
