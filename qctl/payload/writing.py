"""An envelope's JSON text and its signature, written from a cached layout.

Of a payload's fields only the uuid, the push time, the command and the chain/batch fields differ
from one job of a class to the next; the rest (names, options) are the same for every job with the
same options. A `Layout` holds the JSON of those fixed fields once, in two orders: as the payload
stores them (`Envelope.to_dict` order) and as the signature covers them (keys sorted: `canonical`).
Writing a payload then encodes only the per-job values and fills them in. The text is byte for byte
what encoding the whole `to_dict()` gives, and the signature what `Signer.sign` gives: both layouts
are made by encoding a body whose per-job values are placeholders, with the encoders that
`Envelope.to_json` and `canonical` have always used, so key order and escaping come from them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from qctl.payload.signing import Signer

_PLACEHOLDER = f"\x00qctl-{os.urandom(8).hex()}-"
"""Stands for a per-job value while a layout is made: a NUL and random text no fixed field holds."""
_SLOT = re.compile(re.escape(json.dumps(_PLACEHOLDER)[:-1]) + r"(\d+)\"")
UUID, PUSHED_AT, COMMAND = 0, 1, 2
"""Slot numbers; the chain/batch (extra data) values follow, in the order of their keys."""
MAX_LAYOUTS = 4096
"""Layouts kept (a process dispatches a few job classes; per-job options such as a retry_until
that changes every time make new keys, which beyond this are built and dropped)."""


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _encoder(sort_keys: bool) -> Callable[[Any], str]:
    """json.dumps(value, separators=(",", ":"), sort_keys=…, ensure_ascii=True), minus building an
    encoder per call. Values come from `qctl.payload.values.encode`: fresh containers, no cycles."""
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]  # CPython's C encoder
    if make is None:
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, sort_keys=sort_keys).encode
    chunks = make(None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",", sort_keys, False, True)
    quote = json.encoder.encode_basestring_ascii

    def encode(value: Any) -> str:
        return quote(value) if type(value) is str else "".join(chunks(value, 0))

    return encode


encode_plain = _encoder(sort_keys=False)
encode_sorted = _encoder(sort_keys=True)
quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
"""A string as JSON (ASCII, escaped), as both encoders write it."""


@dataclass(frozen=True, slots=True)
class Layout:
    """`plain % values` is the stored JSON without its closing brace; `canonical % values` is what
    the signature covers. Each `*_order` picks the per-job values in the order its text needs them."""

    plain: str
    plain_order: Callable[[Sequence[str]], tuple[str, ...]]
    canonical: str
    canonical_order: Callable[[Sequence[str]], tuple[str, ...]]


def layout_for(fixed: tuple[Any, ...], body: Callable[[], dict[str, Any]], extra_keys: Sequence[str]) -> Layout:
    """The layout of bodies whose fixed fields are `fixed` (a hashable key that tells them apart, types
    included); `body()` gives such a body with any per-job values (they are replaced here)."""
    found = _LAYOUTS.get(fixed)
    if found is None:
        found = _make_layout(body(), extra_keys)
        if len(_LAYOUTS) < MAX_LAYOUTS:
            _LAYOUTS[fixed] = found
    return found


_LAYOUTS: dict[tuple[Any, ...], Layout] = {}


def _make_layout(body: dict[str, Any], extra_keys: Sequence[str]) -> Layout:
    def slot(number: int) -> str:
        return f"{_PLACEHOLDER}{number}"

    data = dict(body["data"])
    data["command"] = slot(COMMAND)
    for number, key in enumerate(extra_keys, start=COMMAND + 1):
        data[key] = slot(number)
    body = {**body, "uuid": slot(UUID), "pushedAt": slot(PUSHED_AT), "data": data}
    plain, plain_order = _template(encode_plain(body))
    canonical, canonical_order = _template(encode_sorted(body))
    assert plain.endswith("}")
    return Layout(plain[:-1], plain_order, canonical, canonical_order)


def _template(text: str) -> tuple[str, Callable[[Sequence[str]], tuple[str, ...]]]:
    """`text` with each placeholder as `%s` (other `%` doubled), and a picker of the values it needs, in order."""
    parts = _SLOT.split(text)
    fixed, numbers = parts[0::2], [int(n) for n in parts[1::2]]
    assert len(numbers) == len(set(numbers)) >= 3
    return "%s".join(part.replace("%", "%%") for part in fixed), itemgetter(*numbers)


def write(layout: Layout, values: Sequence[str], signer: Signer | None) -> str:
    """The payload text, given the per-job values already encoded (`encode_plain`), and, when signing,
    `values` as `encode_sorted` writes them after them: (plain…, sorted…)."""
    if signer is None:
        return layout.plain % layout.plain_order(values) + "}"
    half = len(values) // 2
    canonical = layout.canonical % layout.canonical_order(values[half:])
    signature = signer.sign_canonical(canonical.encode("ascii"))
    return f'{layout.plain % layout.plain_order(values[:half])},"signature":"{signature}"}}'


def encoded_values(uuid: str, pushed_at: str, command: Any, extra: Mapping[str, Any], signed: bool) -> list[str]:
    """The per-job values for `write`: as stored, then (when `signed`) as the signature covers them."""
    uuid_text, pushed_text = quote(uuid), quote(pushed_at)
    if not extra:
        if signed:
            return [uuid_text, pushed_text, encode_plain(command), uuid_text, pushed_text, encode_sorted(command)]
        return [uuid_text, pushed_text, encode_plain(command)]
    values = [uuid_text, pushed_text, encode_plain(command), *[encode_plain(v) for v in extra.values()]]
    if signed:
        values += (uuid_text, pushed_text, encode_sorted(command), *[encode_sorted(v) for v in extra.values()])
    return values
