"""Configuration: `[tool.recipecheck]` in pyproject.toml, or a recipecheck.toml.

Found by walking up from each linted file; `--config FILE` overrides discovery. Every model
forbids unknown keys, and a bad file is reported with its path, the key and what was expected.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from recipecheck.finding import Severity
from recipecheck.rule import all_rules, options_for, rule_by_code, validate_selector


class ConfigError(Exception):
    """A configuration problem; the CLI prints it on one line and exits 2."""


def _selectors(v: list[str]) -> list[str]:
    return [validate_selector(s) for s in v]


class LintConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    select: list[str] | None = None
    ignore: list[str] = Field(default_factory=list)
    extend_select: list[str] = Field(default_factory=list, alias="extend-select")
    per_file_ignores: dict[str, list[str]] = Field(default_factory=dict, alias="per-file-ignores")
    exclude: list[str] = Field(default_factory=list)
    fail_on: Literal["error", "warning", "info"] = Field(default="warning", alias="fail-on")
    max_file_size: int = Field(default=5_000_000, alias="max-file-size", gt=0)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("select")
    @classmethod
    def _v_select(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _selectors(v)

    @field_validator("ignore", "extend_select")
    @classmethod
    def _v_ignore(cls, v: list[str]) -> list[str]:
        return _selectors(v)

    @field_validator("per_file_ignores")
    @classmethod
    def _v_pfi(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k: _selectors(codes) for k, codes in v.items()}

    @field_validator("options")
    @classmethod
    def _v_options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for code, raw in v.items():
            rule = rule_by_code(code)
            if rule is None:
                raise ValueError(f"options.{code}: no rule has this code")
            try:
                options_for(rule, raw)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                raise ValueError(f"options.{code}.{loc}: {err['msg']}") from None
        return {c.upper(): raw for c, raw in v.items()}


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
        except ValueError:
            return path.as_posix()

    def is_excluded(self, path: Path) -> bool:
        rel = self.relpath(path)
        return any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat)
                   or rel.startswith(pat.rstrip("/") + "/") for pat in self.config.exclude)

    def ignores_for(self, path: Path) -> list[str]:
        rel = self.relpath(path)
        out: list[str] = []
        for pat, codes in self.config.per_file_ignores.items():
            if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(path.name, pat):
                out += codes
        return out

    def key(self) -> str:
        """Stable digest of everything that changes findings (for the cache)."""
        data = self.config.model_dump(by_alias=True, exclude={"exclude"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    return f"{path}: [tool.recipecheck] key '{loc}': {msg}"


def load_file(path: Path) -> Settings:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("recipecheck", {})
    try:
        cfg = LintConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    return Settings(cfg, path.parent, path)


def _has_section(pyproject: Path) -> bool:
    try:
        text = pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return "[tool.recipecheck" in text


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
    return [r.CODE for r in all_rules()]
