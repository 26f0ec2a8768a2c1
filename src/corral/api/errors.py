"""Typed API errors and their Kubernetes ``Status`` form.

Everything below the HTTP edge raises :class:`StatusError`; the API server turns it into
the exact bytes the real server sends (compact JSON, Go field order, trailing newline),
because clients compare error bodies byte for byte. Field errors (``FieldError``) carry
the path and wording of Kubernetes' ``field.Error`` so that ``Invalid`` messages read the
same as on a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# Status reasons (metav1.StatusReason).
NOT_FOUND = "NotFound"
ALREADY_EXISTS = "AlreadyExists"
CONFLICT = "Conflict"
INVALID = "Invalid"
BAD_REQUEST = "BadRequest"
FORBIDDEN = "Forbidden"
EXPIRED = "Expired"
GONE = "Gone"
METHOD_NOT_ALLOWED = "MethodNotAllowed"
NOT_ACCEPTABLE = "NotAcceptable"
UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
UNAUTHORIZED = "Unauthorized"
REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLarge"
INTERNAL_ERROR = "InternalError"
TIMEOUT = "Timeout"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
#: no metav1.StatusReason upstream (kube-apiserver answers etcd's NOSPACE with a 500):
#: Corral's reason for 507, the status that says the server cannot store the request
INSUFFICIENT_STORAGE = "InsufficientStorage"


class GoValue(str):
    """A bad value already rendered as Go prints it (``%#v`` of a struct): shown verbatim."""


def _render_value(value: Any) -> str:
    """Render a value the way Go's ``%#v`` does in field errors for common types."""
    if isinstance(value, GoValue):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure at ``field`` (a path such as ``spec.containers[0].name``).

    ``type`` is the cause reason (``FieldValueInvalid``...); ``message`` renders as the
    real apiserver's ``field.Error.Error()`` does.
    """

    type: str
    field: str
    value: Any = None
    detail: str = ""

    _WORDS = {
        "FieldValueRequired": "Required value",
        "FieldValueInvalid": "Invalid value",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueTooLong": "Too long",
        "FieldValueTooMany": "Too many",
        "FieldValueNotFound": "Not found",
        "FieldValueTypeInvalid": "Invalid value",
    }

    @property
    def body(self) -> str:
        """The message without the field path, as found in ``causes[].message``."""
        word = self._WORDS.get(self.type, "Invalid value")
        if self.type in (
            "FieldValueInvalid",
            "FieldValueNotSupported",
            "FieldValueDuplicate",
            "FieldValueNotFound",
            "FieldValueTypeInvalid",
        ):
            text = f"{word}: {_render_value(self.value)}"
        elif self.type == "FieldValueTooMany" and self.value is not None:
            text = f"{word}: {_render_value(self.value)}"  # upstream shows the actual count
        else:
            text = word
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", field, None, detail)


def invalid(field: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("FieldValueInvalid", field, value, detail)


def not_supported(field: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{s}"' for s in supported)
    return FieldError("FieldValueNotSupported", field, value, detail)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", field, None, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", field, value)


def too_long(field: str, max_len: int) -> FieldError:
    return FieldError("FieldValueTooLong", field, None, f"must have at most {max_len} bytes")


class StatusError(Exception):
    """An error that the API answers with a ``Status`` object and HTTP ``code``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The Status object, keys in the Go struct's order."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out

    def body(self) -> bytes:
        return orjson.dumps(self.status()) + b"\n"


def qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if group:
        d["group"] = group
    d["kind"] = kind
    return d


def not_found(resource: str, group: str, name: str) -> StatusError:
    return StatusError(
        404,
        NOT_FOUND,
        f'{qualified(resource, group)} "{name}" not found',
        _details(name, group, resource),
    )


def path_not_found() -> StatusError:
    return StatusError(404, NOT_FOUND, "the server could not find the requested resource", {})


def already_exists(resource: str, group: str, name: str) -> StatusError:
    return StatusError(
        409,
        ALREADY_EXISTS,
        f'{qualified(resource, group)} "{name}" already exists',
        _details(name, group, resource),
    )


def conflict(resource: str, group: str, name: str, why: str | None = None) -> StatusError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version and try again"
    )
    return StatusError(
        409,
        CONFLICT,
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        _details(name, group, resource),
    )


def invalid_object(kind: str, group: str, name: str, errors: list[FieldError]) -> StatusError:
    """422 Invalid, worded as ``Kind.group "name" is invalid: ...``."""
    qual = f"{kind}.{group}" if group else kind
    summary = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    details = _details(name, group, kind)
    details["causes"] = [{"reason": e.type, "message": e.body, "field": e.field} for e in errors]
    return StatusError(422, INVALID, f'{qual} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> StatusError:
    return StatusError(400, BAD_REQUEST, message)


def forbidden_error(
    message: str, resource: str = "", group: str = "", name: str = ""
) -> StatusError:
    details = _details(name, group, resource) if resource else None
    return StatusError(403, FORBIDDEN, message, details)


def expired(message: str) -> StatusError:
    return StatusError(410, EXPIRED, message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> StatusError:
    return StatusError(405, METHOD_NOT_ALLOWED, message, {})


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, NOT_ACCEPTABLE, message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(
        415,
        UNSUPPORTED_MEDIA_TYPE,
        f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json ({content_type})",
    )


def unauthorized() -> StatusError:
    return StatusError(401, UNAUTHORIZED, "Unauthorized")


def too_large() -> StatusError:
    return StatusError(413, REQUEST_ENTITY_TOO_LARGE, "Request entity too large: limit is 3145728")


def internal(message: str) -> StatusError:
    return StatusError(500, INTERNAL_ERROR, f"Internal error occurred: {message}")


def insufficient_storage(detail: str) -> StatusError:
    """507: a write refused because the store's disk is full (reads keep working; the
    write did not happen). Not 503: the server is up and serves reads, and clients
    retry a 503 elsewhere or at once; not upstream's 500: nothing is broken inside."""
    return StatusError(
        507,
        INSUFFICIENT_STORAGE,
        f"storage: {detail}: writes are refused until space is freed (reads still work)",
    )
