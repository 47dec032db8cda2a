"""Payload text written from cached layouts is byte for byte what encoding the whole body gives,
and its signature what signing the body gives: payloads already stored keep verifying."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from qctl.payload import envelope, writing
from qctl.payload.envelope import Envelope, parse
from qctl.payload.signing import SIGNATURE_FIELD, Signer

KEY = b"k" * 32
SIGN_KEY = hmac.new(KEY, b"qctl payload signature", hashlib.sha256).digest()
STORED = (
    '{"uuid":"00000000-0000-4000-8000-000000000001","displayName":"app.jobs.Ship %s \\u00fc",'
    '"job":"qctl.CallQueuedHandler@call","maxTries":3,"maxExceptions":null,"failOnTimeout":false,"backoff":"1,5",'
    '"timeout":30.0,"retryUntil":2000000000,"data":{"commandName":"app.jobs:Ship","command":{"z":1,"a":[1.5,'
    '{"y":null,"b":"\\u00e9"}]},"chained":["x"],"batchId":"00000000-0000-4000-8000-000000000002"},"attempts":0,'
    '"pushedAt":"1700000000.1234","signature":"3456c2af577d20128eb2cdee8e0fb16f6eaa4d286532e474c9ce2fe99af49a1d"}'
)
"""Written by the release before layouts (whole-body encoding), with the app key KEY."""


def make(**overrides: object) -> Envelope:
    fields = dict(uuid="00000000-0000-4000-8000-000000000001", display_name="app.jobs.Ship %s ü", job=envelope.HANDLER_JOB,
                  command_name="app.jobs:Ship", command={"z": 1, "a": [1.5, {"y": None, "b": "é"}]}, max_tries=3,
                  backoff="1,5", timeout=30.0, retry_until=2000000000, pushed_at="1700000000.1234",
                  extra_data={"chained": ["x"], "batchId": "00000000-0000-4000-8000-000000000002"})
    fields.update(overrides)
    return Envelope(**fields)  # type: ignore[arg-type]


def whole_body(env: Envelope, signed: bool) -> str:
    """How payloads were written before layouts: the whole body encoded, signed over its sorted form."""
    body = env.to_dict()
    if signed:
        covered = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        body[SIGNATURE_FIELD] = hmac.new(SIGN_KEY, covered, hashlib.sha256).hexdigest()
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True)


def test_a_payload_is_written_as_the_release_before_wrote_it() -> None:
    assert make().to_json(Signer(KEY)) == STORED
    assert parse(STORED.encode(), Signer(KEY)) == make()


VARIANTS: list[dict[str, object]] = [
    {},
    {"extra_data": {}},
    {"extra_data": {"batchId": "00000000-0000-4000-8000-000000000003"}},
    {"extra_data": {"zz": 1, "aa": {"q": 2, "b": 1}, "command~": 3}},  # keys that sort around command(Name)
    {"timeout": 30},
    {"timeout": -0.0},
    {"timeout": None, "max_tries": None, "backoff": None, "retry_until": None},
    {"max_tries": 1, "fail_on_timeout": True},
    {"command": "bm9uY2UgYW5kIGNpcGhlcnRleHQ="},  # an encrypted command is a string
    {"command": {}},
    {"command": {"100%": "50% \"quoted\" \\ \n\x00 \u2603 \U0001f600"}},
    {"display_name": "%(name)s %% %d \"\\", "command_name": "app.jobs:Odd"},
    {"command": {"f": [float("nan"), float("inf"), 1e300, -1.0e-7, 2**70]}},
    {"job": envelope.HANDLER_FUNCTION, "command": {"args": [1], "kwargs": {}, "catch": []}},
]


@pytest.mark.parametrize("overrides", VARIANTS)
@pytest.mark.parametrize("signed", [False, True])
def test_every_field_is_written_as_whole_body_encoding_writes_it(overrides: dict[str, object], signed: bool) -> None:
    env = make(**overrides)
    expected = whole_body(env, signed)
    assert env.to_json(Signer(KEY) if signed else None) == expected
    assert env.to_json(Signer(KEY) if signed else None) == expected  # from the cached layout


def test_equal_numbers_of_other_types_get_layouts_of_their_own() -> None:
    written = {repr(t): make(timeout=t).to_json(None) for t in (30, 30.0, True)}
    assert [json.loads(text)["timeout"] for text in written.values()] == [30, 30.0, True]
    assert '"timeout":30,' in written["30"] and '"timeout":30.0,' in written["30.0"]
    assert '"timeout":-0.0,' in make(timeout=-0.0).to_json(None) and '"timeout":0.0,' in make(timeout=0.0).to_json(None)


def test_layouts_beyond_the_limit_are_written_but_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writing, "_LAYOUTS", {})
    monkeypatch.setattr(writing, "MAX_LAYOUTS", 2)
    texts = [make(retry_until=n).to_json(Signer(KEY)) for n in range(5)]
    assert texts == [whole_body(make(retry_until=n), True) for n in range(5)]
    assert len(writing._LAYOUTS) == 2


def test_a_value_json_cannot_hold_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        make(command={"x": object()}).to_json(None)


@pytest.mark.parametrize("text", [b"", b"{}", b"x" * 63, b"x" * 64, b"x" * 65, bytes(range(256)) * 40])
def test_a_signature_is_hmac_sha256_of_the_canonical_bytes(text: bytes) -> None:
    assert Signer(KEY).sign_canonical(text) == hmac.new(SIGN_KEY, text, hashlib.sha256).hexdigest()
