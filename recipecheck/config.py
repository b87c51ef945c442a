"""Configuration: `[tool.recipecheck]` in pyproject.toml, or a recipecheck.toml.

Found by walking up from each linted file; `--config FILE` overrides discovery. Every model
forbids unknown keys, and a bad file is reported with its path, the key and what was expected.
"""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from recipecheck.finding import Severity
from recipecheck.rule import options_for, rule_by_code, rule_index, validate_selector


class ConfigError(Exception):
    """A configuration problem; the CLI prints it on one line and exits 2."""


_KEYS = ("select", "extend-select", "ignore", "per-file-ignores", "exclude", "fail-on",
         "max-file-size", "options")
_FAIL_ON = ("error", "warning", "info")


@dataclass
class LintConfig:
    """The validated `[tool.recipecheck]` table (plain data: validated by hand so that errors
    read as this project's words, and so that a lint needs no pydantic at start-up)."""

    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    fail_on: str = "warning"
    max_file_size: int = 5_000_000
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        return {"select": self.select, "ignore": self.ignore, "extend-select": self.extend_select,
                "per-file-ignores": self.per_file_ignores, "exclude": self.exclude,
                "fail-on": self.fail_on, "max-file-size": self.max_file_size,
                "options": self.options}


def _toml_repr(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "a list" if v else "[]"
    return repr(v)


def _codes(key: str, v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
        raise ConfigError(f"'{key}' must be a list of rule codes like [\"RC2\", \"RC101\"], "
                          f"got {_toml_repr(v)}")
    out = []
    for c in v:
        try:
            out.append(validate_selector(c))
        except ValueError as exc:
            raise ConfigError(f"'{key}': {exc}") from None
    return out


def _globs(key: str, v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
        raise ConfigError(f"'{key}' must be a list of glob patterns, got {_toml_repr(v)}")
    return list(v)


def _options(v: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(v, dict):
        raise ConfigError(f"'options' must be a table of rule codes, got {_toml_repr(v)}")
    out: dict[str, dict[str, Any]] = {}
    for code, raw in v.items():
        rule = rule_by_code(code)
        if rule is None:
            raise ConfigError(f"'options.{code}': no rule has this code")
        if not isinstance(raw, dict):
            raise ConfigError(f"'options.{code}' must be a table, got {_toml_repr(raw)}")
        try:
            options_for(rule, raw)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            errors = getattr(exc, "errors", None)
            if callable(errors):
                err = errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                if err["type"] == "extra_forbidden":
                    msg = "unknown option"
                else:  # "Input should be a valid number, ..." -> "must be a valid number, got ..."
                    msg = err["msg"].replace("Input should be", "must be").replace(
                        "Value error, ", "")
                    if "input" in err and not isinstance(err["input"], dict):
                        msg += f", got {_toml_repr(err['input'])}"
                fields = rule.Options.model_fields if rule.Options else {}
                names = [f.alias or k for k, f in fields.items()]
                near = difflib.get_close_matches(loc, names, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near and err["type"] == "extra_forbidden" else ""
                raise ConfigError(f"'options.{code}.{loc}': {msg}{hint}") from None
            raise ConfigError(f"'options.{code}': {exc}") from None
        out[code.upper()] = raw
    return out


def validate_config(data: Any) -> LintConfig:
    """Check a `[tool.recipecheck]` table; ConfigError says which key and what was expected."""
    if not isinstance(data, dict):
        raise ConfigError(f"must be a table of settings, got {_toml_repr(data)}")
    for key in data:
        if key not in _KEYS:
            alias = key.replace("_", "-")
            near = [alias] if alias in _KEYS else difflib.get_close_matches(key, _KEYS, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (known keys: {', '.join(_KEYS)})"
            raise ConfigError(f"unknown key '{key}'{hint}")
    cfg = LintConfig()
    if "select" in data:
        cfg.select = _codes("select", data["select"])
    if "ignore" in data:
        cfg.ignore = _codes("ignore", data["ignore"])
    if "extend-select" in data:
        cfg.extend_select = _codes("extend-select", data["extend-select"])
    if "exclude" in data:
        cfg.exclude = _globs("exclude", data["exclude"])
    if "per-file-ignores" in data:
        pfi = data["per-file-ignores"]
        if not isinstance(pfi, dict):
            raise ConfigError("'per-file-ignores' must be a table of glob = [codes], "
                              f"got {_toml_repr(pfi)}")
        cfg.per_file_ignores = {k: _codes(f"per-file-ignores.{k}", v) for k, v in pfi.items()}
    if "fail-on" in data:
        v = data["fail-on"]
        if v not in _FAIL_ON:
            raise ConfigError(f"'fail-on' must be one of \"error\", \"warning\", \"info\", "
                              f"got {_toml_repr(v)}")
        cfg.fail_on = v
    if "max-file-size" in data:
        v = data["max-file-size"]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"'max-file-size' must be a whole number of bytes above 0, "
                              f"got {_toml_repr(v)}")
        cfg.max_file_size = v
    if "options" in data:
        cfg.options = _options(data["options"])
    return cfg


class Settings:
    """A loaded configuration plus where it came from (globs are relative to `root`)."""

    def __init__(self, config: LintConfig, root: Path, source: Path | None) -> None:
        self.config = config
        self.root = root
        self.source = source

    @property
    def fail_on(self) -> Severity:
        return Severity(self.config.fail_on)

    def relpath(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except (ValueError, OSError, RuntimeError):  # outside the root, or a symlink loop
            return path.as_posix()

    def is_excluded(self, path: Path, explicit: tuple[Path, ...] | list[Path] = ()) -> bool:
        """Whether a path found while walking is excluded.

        As in ruff, a path the user names (or one inside it) is linted even under an excluded
        directory: `exclude = ["fixtures"]` keeps `lint .` out of fixtures/ but
        `lint fixtures/scripts` still lints them.
        """
        rel = self.relpath(path)
        for pat in self.config.exclude:
            if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat):
                if not any(self._inside(e, pat) and self.relpath(e) != "" for e in explicit):
                    return True
            elif rel.startswith(pat.rstrip("/") + "/"):
                if not any(self._inside(e, pat) for e in explicit):
                    return True
        return False

    def _inside(self, explicit: Path, pat: str) -> bool:
        rel = self.relpath(explicit)
        if rel in (".", ""):
            return False
        return fnmatch.fnmatch(rel, pat) or rel.startswith(pat.rstrip("/") + "/")

    def ignores_for(self, path: Path) -> list[str]:
        rel = self.relpath(path)
        out: list[str] = []
        for pat, codes in self.config.per_file_ignores.items():
            if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat):
                out += codes
        return out

    def key(self) -> str:
        """Stable digest of everything that changes findings (for the cache)."""
        data = self.config.dump()
        data.pop("exclude")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8 (TOML files must be UTF-8)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _section(path: Path, data: dict[str, Any]) -> Any:
    """The recipecheck table of a pyproject.toml (None when it has none)."""
    tool = data.get("tool")
    if tool is None:
        return None
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: 'tool' must be a table, got {_toml_repr(tool)}")
    return tool.get("recipecheck")


def load_file(path: Path) -> Settings:
    data = _read_toml(path)
    where = f"{path}: [tool.recipecheck]" if path.name == "pyproject.toml" else f"{path}:"
    if path.name == "pyproject.toml":
        data = _section(path, data)
        if data is None:
            data = {}
    try:
        cfg = validate_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{where} {exc}") from None
    return Settings(cfg, path.parent, path)


def _has_section(pyproject: Path) -> bool:
    """Whether a pyproject.toml configures recipecheck; one that mentions it but cannot be
    read or parsed is an error, never silently ignored."""
    try:
        raw = pyproject.read_bytes()
    except OSError:
        return False
    if b"recipecheck" not in raw:  # cheap: most pyprojects on the way up are not ours
        return False
    return _section(pyproject, _read_toml(pyproject)) is not None


@lru_cache(maxsize=256)
def find_config_for_dir(directory: str) -> Path | None:
    d = Path(directory).resolve()
    for cand in (d, *d.parents):
        rc = cand / "recipecheck.toml"
        if rc.is_file():
            return rc
        pp = cand / "pyproject.toml"
        if pp.is_file() and _has_section(pp):
            return pp
    return None


_loaded: dict[Path, Settings] = {}


def settings_for(path: Path, override: Path | None = None) -> Settings:
    cfg_path = override or find_config_for_dir(str(path if path.is_dir() else path.parent))
    if cfg_path is None:
        return default_settings()
    cfg_path = cfg_path.resolve()
    if cfg_path not in _loaded:
        _loaded[cfg_path] = load_file(cfg_path)
    return _loaded[cfg_path]


def default_settings() -> Settings:
    return Settings(LintConfig(), Path(os.getcwd()), None)


def rule_codes() -> list[str]:
    return [r.CODE for r in rule_index()]
