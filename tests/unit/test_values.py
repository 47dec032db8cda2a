"""Typed attribute values round-trip exactly, types included; anything else is refused at dispatch."""

from __future__ import annotations

import datetime as dt
import enum
import io
import json
import socket
import uuid
from decimal import Decimal

import pytest

from qctl.errors import PayloadError, SerializationError
from qctl.payload.values import decode, encode


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"


def resolve(path: str) -> type:
    return {"tests.unit.test_values:Color": Color, "tests.unit.test_values:Level": Level,
            "tests.unit.test_values:Mode": Mode}[path]


def roundtrip(value: object) -> object:
    wire = json.loads(json.dumps(encode(value, "job.value")))
    return decode(wire, "job.value", resolve)


SAMPLES = [
    None, True, False, 0, -5, 2**70, 1.5, 0.1, "text", "žluť 🐍", "a/b",
    [], {}, [1, [2, [3]]], {"a": {"b": [1, 2]}},
    (1, 2), (), {1, 2, 3}, frozenset({"x"}), b"\x00\xffbytes", bytearray(b"ab"),
    dt.datetime(2026, 11, 25, 10, 30, 0, 123456),
    dt.datetime(2026, 11, 25, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.date(2026, 1, 31), dt.time(23, 59, 1), dt.timedelta(days=2, seconds=5, microseconds=7),
    Decimal("12.3400"), Decimal("-0.000001"), uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Color.RED, Level.HIGH, Mode.FAST, float("inf"), float("-inf"),
    {1: "int key", (1, 2): "tuple key"}, {"__qctl__": "looks like a tag"},
    {"nested": [(1, {Decimal("1"): {b"k"}})]},
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_roundtrip_keeps_value_and_type(value: object) -> None:
    back = roundtrip(value)
    assert back == value
    assert type(back) is type(value)


def test_nested_types_survive() -> None:
    value = {"when": [dt.date(2026, 1, 1), (Decimal("1.10"), {b"x"})]}
    back = roundtrip(value)
    assert type(back["when"][1]) is tuple  # type: ignore[index]
    assert type(back["when"][1][0]) is Decimal  # type: ignore[index]
    assert str(back["when"][1][0]) == "1.10"  # type: ignore[index]


def test_nan_roundtrips() -> None:
    back = roundtrip(float("nan"))
    assert isinstance(back, float) and back != back


@pytest.mark.parametrize(
    "value, fragment",
    [
        (lambda: 1, "lambda"),
        (io.StringIO("x"), "StringIO"),
        (object(), "object"),
        ({"ok": [1, {"deep": print}]}, "job.value.ok[1].deep"),
    ],
)
def test_unsupported_values_are_refused_naming_the_attribute(value: object, fragment: str) -> None:
    with pytest.raises(SerializationError) as caught:
        encode(value, "job.value")
    assert fragment in str(caught.value)
    assert "job.value" in str(caught.value)


def test_open_file_and_socket_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with open(tmp_path / "f", "w") as f, pytest.raises(SerializationError):
        encode(f, "job.file")
    sock = socket.socket()
    try:
        with pytest.raises(SerializationError):
            encode(sock, "job.sock")
    finally:
        sock.close()


def test_subclasses_of_containers_are_refused_rather_than_losing_their_type() -> None:
    from collections import OrderedDict, namedtuple

    Point = namedtuple("Point", "x y")
    for value in (OrderedDict(a=1), Point(1, 2)):
        with pytest.raises(SerializationError):
            encode(value, "job.value")


def test_enum_defined_in_a_function_is_refused() -> None:
    class Local(enum.Enum):
        A = 1

    with pytest.raises(SerializationError, match="inside a function"):
        encode(Local.A, "job.value")


@pytest.mark.parametrize(
    "wire, fragment",
    [
        ({"__qctl__": "datetime", "v": "not a date"}, "bad datetime"),
        ({"__qctl__": "decimal", "v": "abc"}, "bad decimal"),
        ({"__qctl__": "enum", "v": {"cls": "tests.unit.test_values:Color", "v": "green"}}, "no member"),
        ({"__qctl__": "martian", "v": 1}, "unknown typed value"),
        ({"__qctl__": "bytes", "v": "%%%"}, "bad bytes"),
    ],
)
def test_bad_typed_values_raise_payload_errors_naming_the_attribute(wire: object, fragment: str) -> None:
    with pytest.raises(PayloadError) as caught:
        decode({"field": wire}, "Job", resolve)
    assert fragment in str(caught.value)
    assert "Job.field" in str(caught.value)


@pytest.mark.parametrize("card", [
    {"__qctl__": "enum", "v": {"cls": "qctl_testjobs:Colour", "v": "4111-1111"}},  # a member renamed by a deploy
    {"__qctl__": "decimal", "v": "4111-1111"},
])
def test_an_encrypted_jobs_decode_error_names_the_attribute_and_type_never_the_value(card: object) -> None:
    import base64

    from qctl.jobs.resolve import Resolver
    from qctl.payload.envelope import HANDLER_JOB, Envelope
    from qctl.payload.signing import Signer, generate_key
    from qctl.worker.instantiate import instantiate

    signer = Signer(base64.b64decode(generate_key()[len("base64:"):]))
    secret = signer.encrypt(json.dumps({"card": card, "out": "x"}).encode())
    envelope = Envelope(uuid="00000000-0000-4000-8000-000000000009", display_name="Secret", job=HANDLER_JOB,
                        command_name="qctl_testjobs.secret:Secret", command=secret)
    with pytest.raises(PayloadError, match=r"Secret\.card: cannot decode this \w+ value") as refused:
        instantiate(envelope, Resolver(("qctl_testjobs",)), signer)
    assert "4111" not in str(refused.value)
