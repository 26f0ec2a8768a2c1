"""The calls of the Mesos v1 executor API, checked as the agent checks them (pure).

``parse_call`` is what ``Http::executor`` (apache/mesos ``src/slave/http.cpp``) and
``validateExecutorCall`` (``src/common/validation.cpp``) do before any executor is looked
up: the body's media type, the JSON, the required fields of ``executor.proto``'s ``Call``,
and an UPDATE's TaskStatus (a 16-byte ``uuid``, ``SOURCE_EXECUTOR``, not TASK_STAGING,
the call's executor id). A refused call raises ``CallError`` carrying Mesos' answer: 400
with its words, 415 for another media type. ``mesos_executor.py`` calls it for every
``POST /api/v1/executor``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

Obj = dict[str, Any]

STATES = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
                    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
                    "TASK_DROPPED", "TASK_UNREACHABLE", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
                    "TASK_UNKNOWN"})  # fmt: skip
TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
                      "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"})  # fmt: skip
CALLS = ("SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT", "UNKNOWN")


@dataclass(frozen=True)
class Answer:
    """A call's plain-text HTTP answer."""

    status: int
    text: str = ""


class CallError(Exception):
    """A call refused; ``answer`` is what the executor is told."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.answer = Answer(status, text)


def value_of(field_: Any) -> str:
    """The string of an id message (``{"value": "x"}``); "" when absent or malformed."""
    if isinstance(field_, dict) and isinstance(field_.get("value"), str):
        return str(field_["value"])
    return ""


def _id_present(call: Obj, name: str) -> None:
    if name not in call:
        raise CallError(400, f"Failed to validate Executor::Call: Expecting '{name}' to be present")
    if not value_of(call[name]):
        raise CallError(400, f"Failed to convert JSON into Call protobuf: invalid '{name}'")


def _b64(raw: Any, what: str) -> bytes:
    if not isinstance(raw, str):
        raise CallError(400, f"Failed to convert JSON into Call protobuf: '{what}' is not bytes")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise CallError(
            400, f"Failed to convert JSON into Call protobuf: '{what}' is not base64"
        ) from None


def validate_status(status: Any, call: Obj) -> Obj:
    """An UPDATE's TaskStatus, checked as Mesos checks it; raises ``CallError``."""
    if not isinstance(status, dict):
        raise CallError(400, "Failed to validate Executor::Call: Expecting 'update' to be present")
    if not value_of(status.get("task_id")) or status.get("state") not in STATES:
        raise CallError(
            400, "Failed to convert JSON into Call protobuf: TaskStatus needs task_id and state"
        )
    if "uuid" not in status:
        raise CallError(400, "Failed to validate Executor::Call: Expecting 'uuid' to be present")
    if len(_b64(status["uuid"], "update.status.uuid")) != 16:
        raise CallError(400, "Failed to validate Executor::Call: Not a valid UUID")
    eid, fid = value_of(call.get("executor_id")), value_of(call.get("framework_id"))
    if "executor_id" in status and value_of(status["executor_id"]) != eid:
        raise CallError(
            400,
            f"Failed to validate Executor::Call: ExecutorID in Call: {eid} does not match "
            f"ExecutorID in TaskStatus: {value_of(status['executor_id'])}",
        )
    if status.get("source") != "SOURCE_EXECUTOR":
        raise CallError(
            400,
            f"Failed to validate Executor::Call: Received Call from executor {eid} of "
            f"framework {fid} with invalid source, expecting 'SOURCE_EXECUTOR'",
        )
    if status["state"] == "TASK_STAGING":
        raise CallError(
            400,
            f"Failed to validate Executor::Call: Received TASK_STAGING from executor {eid} "
            f"of framework {fid} which is not allowed",
        )
    return status


def parse_call(body: bytes, content_type: str | None) -> Obj:
    """The call in ``body``, validated; raises ``CallError`` with Mesos' answer."""
    if content_type is None:
        raise CallError(400, "Expecting 'Content-Type' to be present")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise CallError(415, "Expecting 'Content-Type' of application/json")
    try:
        call = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise CallError(400, f"Failed to parse body into JSON: {e}") from None
    if not isinstance(call, dict):
        raise CallError(400, "Failed to convert JSON into Call protobuf: not a JSON object")
    kind = call.get("type")
    if kind is None:
        raise CallError(400, "Failed to validate Executor::Call: Expecting 'type' to be present")
    if kind not in CALLS:
        raise CallError(400, f"Failed to convert JSON into Call protobuf: unknown type {kind!r}")
    _id_present(call, "executor_id")
    _id_present(call, "framework_id")
    if kind in ("SUBSCRIBE", "UPDATE", "MESSAGE") and not isinstance(call.get(kind.lower()), dict):
        raise CallError(
            400, f"Failed to validate Executor::Call: Expecting '{kind.lower()}' to be present"
        )
    if kind == "UPDATE":
        validate_status(call["update"].get("status"), call)
    if kind == "MESSAGE":
        if "data" not in call["message"]:
            raise CallError(400, "Failed to convert JSON into Call protobuf: no message.data")
        _b64(call["message"]["data"], "message.data")
    return call


def accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"application/json", "application/*", "*/*"})


__all__ = [
    "CALLS",
    "STATES",
    "TERMINAL",
    "Answer",
    "CallError",
    "accepts_json",
    "parse_call",
    "validate_status",
    "value_of",
]
