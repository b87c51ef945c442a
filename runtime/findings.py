"""The runtime finding record (report.json contract) shared by the monitor, checks and sanity suite."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional


@dataclass
class RuntimeFinding:
    """One runtime finding; serialized as an entry of report.json's "findings" array."""

    code: str  # RT1xx
    name: str  # catalog name, e.g. "gradients-not-reset"
    severity: str  # "error" | "warning" | "info"
    message: str  # what happened, why it hurts, how to fix (one or two lines)
    step: Optional[int] = None  # optimizer step at which it was detected
    epoch: Optional[int] = None
    where: Optional[str] = None  # parameter / layer / module name
    static_twin: Optional[str] = None  # RC code of the matching static rule, if any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
