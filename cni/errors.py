"""CNI errors: one exception type carrying the spec's error code (CNI spec 1.1, "Error")."""

from __future__ import annotations

import enum
from typing import Any


class Code(enum.IntEnum):
    """Well-known error codes of the CNI spec; 100+ are plugin-specific."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENVIRONMENT = 4
    IO_FAILURE = 5
    DECODING_FAILURE = 6
    INVALID_NETWORK_CONFIG = 7
    TRY_AGAIN_LATER = 11
    NOT_AVAILABLE = 50
    NOT_AVAILABLE_LIMITED = 51
    INTERNAL = 999


class CniError(Exception):
    """A failure the runtime sees: printed as the spec's error JSON, exit non-zero."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return f"CniError({self.code}, {self.msg!r})"

    def prefixed(self, prefix: str) -> CniError:
        """The same error with `prefix: ` before the message (the code is kept)."""
        return CniError(self.code, f"{prefix}: {self.msg}", self.details)

    def to_wire(self, cni_version: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return doc

    @classmethod
    def from_wire(cls, doc: Any, *, fallback: str) -> CniError:
        """Read a plugin's error JSON; `fallback` is the message when the JSON is not one.

        A failure is never code 0: a missing, non-integer or non-positive code becomes 999
        (the message is kept when there is one)."""
        if not isinstance(doc, dict):
            return cls(Code.INTERNAL, fallback)
        code = doc.get("code")
        msg = doc.get("msg")
        details = doc.get("details")
        valid_code = isinstance(code, int) and not isinstance(code, bool) and code > 0
        return cls(
            code if valid_code and isinstance(code, int) else Code.INTERNAL,
            msg if isinstance(msg, str) and msg else fallback,
            details if isinstance(details, str) else "",
        )


class MultiError(CniError):
    """Several failures from one request (DEL tries every step); keeps the first code."""

    def __init__(self, errors: list[CniError]) -> None:
        if not errors:
            raise ValueError("MultiError needs at least one error")
        msg = "; ".join(err.msg for err in errors)
        details = "; ".join(err.details for err in errors if err.details)
        super().__init__(errors[0].code, msg, details)
        self.errors = list(errors)
