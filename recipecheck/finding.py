"""The finding record shared by the engine, suppression and every output format."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class Fix:
    """A text edit: replace the 1-based [line:col, end_line:end_col) range with `content`.

    The edit fields are None when the edit was not computed (text output only needs to know
    that a fix exists).
    """

    safety: str  # "safe" | "unsafe"
    description: str
    line: int | None
    column: int | None
    end_line: int | None
    end_column: int | None
    content: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    fix: Fix | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        data = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "message": self.message,
            "fix": self.fix.to_json() if self.fix else None,
        }
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Finding":
        known = {"code", "name", "severity", "path", "line", "column", "end_line",
                 "end_column", "message", "fix"}
        fix = Fix(**data["fix"]) if data.get("fix") else None
        return cls(
            code=data["code"], name=data["name"], severity=Severity(data["severity"]),
            path=data["path"], line=data["line"], column=data["column"],
            end_line=data["end_line"], end_column=data["end_column"],
            message=data["message"], fix=fix,
            extra={k: v for k, v in data.items() if k not in known},
        )

    def sort_key(self) -> tuple:
        return (self.path, self.extra.get("cell", 0), self.line, self.column, self.code)
