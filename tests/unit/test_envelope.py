"""Payload envelopes: Laravel's field names, signatures, one-line reasons for anything unusable."""

from __future__ import annotations

import base64
import json

import pytest

from qctl.errors import PayloadError, SignatureError
from qctl.payload import envelope
from qctl.payload.envelope import Envelope, parse
from qctl.payload.signing import Signer, generate_key


def make(**overrides: object) -> Envelope:
    fields = dict(uuid="00000000-0000-4000-8000-000000000001", display_name="app.jobs.Ship", job=envelope.HANDLER_JOB, command_name="app.jobs:Ship",
                  command={"order": 7}, max_tries=3, backoff="1,5", timeout=30, retry_until=None, pushed_at="1.0")
    fields.update(overrides)
    return Envelope(**fields)  # type: ignore[arg-type]


def signer() -> Signer:
    return Signer(base64.b64decode(generate_key()[len("base64:"):]))


def test_json_uses_laravel_field_names() -> None:
    body = json.loads(make().to_json(None))
    assert list(body) == ["uuid", "displayName", "job", "maxTries", "maxExceptions", "failOnTimeout", "backoff",
                          "timeout", "retryUntil", "data", "attempts", "pushedAt"]
    assert body["data"] == {"commandName": "app.jobs:Ship", "command": {"order": 7}}
    assert body["attempts"] == 0 and body["backoff"] == "1,5"


def test_parse_roundtrip() -> None:
    original = make()
    assert parse(original.to_json(None).encode(), None) == original


def test_signed_payload_verifies_and_tampering_is_refused() -> None:
    key = signer()
    raw = make().to_json(key)
    assert "signature" in json.loads(raw)
    assert parse(raw.encode(), key).uuid == "00000000-0000-4000-8000-000000000001"
    tampered = raw.replace('"order":7', '"order":8')
    with pytest.raises(SignatureError, match="mismatch"):
        parse(tampered.encode(), key)
    with pytest.raises(SignatureError, match="mismatch"):
        parse(make().to_json(signer()).encode(), key)  # another key
    with pytest.raises(SignatureError, match="missing"):
        parse(make().to_json(None).encode(), key)
    garbage = json.loads(raw)
    garbage["signature"] = 12
    with pytest.raises(SignatureError):
        parse(json.dumps(garbage).encode(), key)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\xff\xfe", "not valid UTF-8"),
        (b"garbage", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"{}", "missing field 'data'"),
        (b'{"uuid":"x","job":"j","data":{}}', "missing field 'commandName'"),
        (b'{"uuid":"x","job":"j","data":{"commandName":"a:B"}}', "missing field 'data.command'"),
        (b'{"uuid":1,"job":"j","data":{"commandName":"a:B","command":{}}}', "'uuid' must be a string"),
        (b'{"uuid":"x","job":"j","maxTries":"3","data":{"commandName":"a:B","command":{}}}', "'maxTries'"),
        (b'{"uuid":"x","job":"j","backoff":"a,b","data":{"commandName":"a:B","command":{}}}', "'backoff'"),
    ],
)
def test_unusable_payloads_give_one_line_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse(raw, None)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_uuid_of_garbage_is_stable_and_distinct() -> None:
    a = envelope.uuid_of(b"garbage", "db:q:1")
    assert a == envelope.uuid_of(b"garbage", "db:q:1")
    assert a != envelope.uuid_of(b"garbage", "db:q:2")
    assert envelope.uuid_of(make().to_json(None).encode()) != "u-1"  # an unverified claim is not trusted


def test_encryption_roundtrip_and_wrong_key() -> None:
    key = signer()
    token = key.encrypt(b'{"secret": 1}')
    assert b"secret" not in token.encode()
    assert key.decrypt(token) == b'{"secret": 1}'
    with pytest.raises(PayloadError, match="cannot decrypt"):
        signer().decrypt(token)


def _stored(**changes: object) -> bytes:
    body = json.loads(make().to_json(None))
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return json.dumps(body).replace('"DEEP"', "[" * 50_000 + "]" * 50_000).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("changes", [
    {"uuid": "\ud800" * 36},
    {"uuid": "a" * 37},
    {"uuid": "00000000-0000-4000-8000-00000000000\x00"},
    {"uuid": 7},
    {"backoff": "inf"},
    {"backoff": "1," * 5000},
    {"timeout": float("inf")},
    {"timeout": float("nan")},
    {"timeout": -1},
    {"maxTries": 2**64},
    {"maxTries": True},
    {"retryUntil": "soon"},
    {"retryUntil": 2**64},
    {"data__commandName": "os.system"},
    {"data__batchId": "\ud800"},
    {"data__batchId": ["x"]},
    {"data__command": "DEEP"},
], ids=lambda changes: next(iter(changes)))
def test_a_stored_payload_that_lies_is_refused_in_one_line(changes: dict[str, object]) -> None:
    with pytest.raises(PayloadError) as refused:
        parse(_stored(**changes), None)
    assert "\n" not in str(refused.value)


def test_a_non_ascii_signature_is_a_mismatch_not_a_crash() -> None:
    key = signer()
    body = json.loads(make().to_json(key))
    body["signature"] = "é" * 64
    with pytest.raises(SignatureError, match="mismatch"):
        parse(json.dumps(body).encode(), key)


def test_a_display_name_that_is_not_a_short_string_falls_back_to_the_class_path() -> None:
    assert parse(_stored(displayName=["x"]), None).display_name == "app.jobs:Ship"
    assert parse(_stored(displayName="x" * 100_000), None).display_name == "app.jobs:Ship"
