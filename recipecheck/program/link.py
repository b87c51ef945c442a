"""The project link: one program model per imported project module, connected.

Stage 3 of the pipeline (DESIGN.md, "The project, not the file"). For a linted file, every
project module it imports (transitively, see :mod:`recipecheck.program.project`) gets its own
:class:`ProgramModel`, built from a parse cached by content hash. Then:

- names imported from project modules resolve to the functions and classes of those modules
  (:meth:`ProjectLink.lookup`, following re-exports in packages' ``__init__.py``);
- every model sees every project class by name, so a model class defined in ``model.py`` is a
  local class for ``train.py``: its layers, its methods (``configure_optimizers``), its bases;
- calls into other modules are linked like calls to the file's own functions, so the expanded
  view inlines ``engine.train_one_epoch`` into the epoch loop of ``main``.

Only the linted file's own functions are roots of the expanded view, and findings on nodes of
other modules are dropped by the engine: neighbours inform, they are never reported.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import libcst as cst

from recipecheck.program.model import ClassInfo, FunctionInfo, ProgramModel, _Builder, build_program
from recipecheck.program.project import Project, bindings, neighbours, project_of, read_text

_PARSED: "OrderedDict[tuple[str, str], cst.Module | None]" = OrderedDict()
_PARSED_MAX = 512


def parse_cached(path: str, text: str) -> cst.Module | None:
    """The parse of a neighbour, reused by content hash within the process (None: unparsable)."""
    key = (path, hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest())
    if key in _PARSED:
        _PARSED.move_to_end(key)
        return _PARSED[key]
    try:
        mod: cst.Module | None = cst.parse_module(text)
    except Exception:  # a broken neighbour only informs less
        mod = None
    _PARSED[key] = mod
    if len(_PARSED) > _PARSED_MAX:
        _PARSED.popitem(last=False)
    return mod


class ProjectLink:
    """The modules of one linted file's project neighbourhood, by file path."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.programs: dict[str, ProgramModel] = {}

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
        m = self.programs.get(path)
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

    def module_of(self, fn: FunctionInfo) -> str | None:
        """The file path of the module a function belongs to."""
        prog = fn.program
        return prog.path if prog is not None else None


def _new_program(module: cst.Module, path: str, project: Project, text: str,
                 link: ProjectLink) -> ProgramModel:
    prog = ProgramModel(module)
    prog.path = path
    prog.link = link
    prog.imports.project = bindings(project, path, text)
    _Builder(prog).walk(module)
    return prog


def build_linked(module: cst.Module, path: str, text: str) -> ProgramModel:
    """The program model of `module` (the file at `path`), linked with its project's modules.

    Falls back to the single-file model when the path is not a file on disk or nothing it
    imports belongs to the project.
    """
    project = project_of(path)
    if project is None:
        return build_program(module)
    files = neighbours(path, text)
    if not files:
        return build_program(module)
    link = ProjectLink(project)
    main = _new_program(module, path, project, text, link)
    for f in files:
        ft = read_text(f)
        mod = parse_cached(f, ft) if ft is not None else None
        if mod is None:
            continue
        try:
            link.programs[f] = _new_program(mod, f, project, ft, link)
        except RecursionError:
            continue
    progs = [main, *link.programs.values()]
    for prog in progs:
        prog.own_classes = dict(prog.classes)
    for prog in progs:
        for other in progs:
            if other is prog:
                continue
            for name, c in other.own_classes.items():
                if name not in prog.classes:
                    prog.classes[name] = c
                    prog.foreign_classes.add(name)
    # torch names used in other modules (`nn`, `F`) resolve as there: in real projects the
    # same alias means the same module everywhere, and the file's own imports win
    for prog in link.programs.values():
        for k, v in prog.imports.aliases.items():
            if k not in main.imports.aliases and k not in main.imports.project:
                main.imports.aliases[k] = v
    for prog in link.programs.values():
        prog._link()
    main._link()
    for prog in link.programs.values():
        main.map_constructor_args(prog.calls)
    # parameters of other modules' functions now map to the file's arguments: objects passed
    # in (a loss scaler, a wrapper) can be followed into their classes' methods
    foreign_fns = [f for prog in link.programs.values() for f in prog.functions.values()]
    for _ in range(3):
        main._eval_memo.clear()
        main._call_memo.clear()
        if not main.link_instance_calls(foreign_fns):
            break
    main._eval_memo.clear()
    main._call_memo.clear()
    return main


def is_linked(program: ProgramModel) -> bool:
    return program.link is not None and bool(program.link.programs)


def foreign_programs(program: ProgramModel) -> list[ProgramModel]:
    return list(program.link.programs.values()) if program.link is not None else []
