"""The doctor's result types: one :class:`Check` per check, collected in a :class:`DoctorReport`."""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("ok", "warn", "fail")


@dataclass(frozen=True)
class Check:
    """One check's result.

    Attributes:
        name: The check, e.g. ``"data"`` or ``"truncation"``.
        status: ``"ok"``, ``"warn"`` or ``"fail"``.
        detail: Human-readable explanation (multi-line; names file:line and the fix).
        data: The same facts as plain values, for ``--json``.
    """

    name: str
    status: str
    detail: str
    data: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status is {self.status!r}, but must be one of {list(STATUSES)}")


@dataclass
class DoctorReport:
    """All checks of one doctor run, in the order they ran."""

    data: str
    model: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings do not fail a report)."""
        return all(check.status != "fail" for check in self.checks)

    def add(self, name: str, status: str, detail: str, **data) -> None:
        self.checks.append(Check(name, status, detail, data))

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "data": self.data,
            "model": self.model,
            "checks": [
                {"name": c.name, "status": c.status, "detail": c.detail, "data": c.data}
                for c in self.checks
            ],
        }
