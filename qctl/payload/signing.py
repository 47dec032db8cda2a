"""The app key: HMAC-SHA256 signatures on every payload and encryption for ShouldBeEncrypted jobs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

from qctl.errors import PayloadError, SignatureError

SIGNATURE_FIELD = "signature"
BLOCK = 64
"""SHA-256's block size: an HMAC key is padded to it."""


def generate_key() -> str:
    """A new app key in the form the config expects."""
    return "base64:" + base64.b64encode(os.urandom(32)).decode("ascii")


def canonical(payload: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the payload without its signature, keys sorted."""
    body = {k: v for k, v in payload.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class Signer:
    """Signs and verifies payloads, and encrypts job data, with keys derived from the app key."""

    def __init__(self, app_key: bytes) -> None:
        self._sign_key = hmac.new(app_key, b"qctl payload signature", hashlib.sha256).digest()
        self._encrypt_key = hmac.new(app_key, b"qctl payload encryption", hashlib.sha256).digest()
        # HMAC-SHA256 (RFC 2104) with the key's two padded blocks hashed once: each signature then
        # copies the two hash states instead of hashing them again (half the cost of hmac.digest)
        padded = self._sign_key.ljust(BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))

    def sign(self, payload: dict[str, Any]) -> str:
        return self.sign_canonical(canonical(payload))

    def sign_canonical(self, text: bytes) -> str:
        """The signature of a payload whose `canonical` bytes are `text`: hmac.new(key, text, sha256).hexdigest()."""
        inner = self._inner.copy()
        inner.update(text)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def verify(self, payload: dict[str, Any]) -> None:
        signature = payload.get(SIGNATURE_FIELD)
        if signature is None:
            raise SignatureError("missing signature: the worker has a key and this payload is unsigned")
        expected = self.sign(payload).encode("ascii")
        given = signature.encode("utf-8", "surrogatepass") if isinstance(signature, str) else None
        if given is None or not hmac.compare_digest(given, expected):  # bytes: a non-ASCII str cannot raise
            raise SignatureError("signature mismatch: the payload was changed or signed with another key")

    def encrypt(self, data: bytes) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(12)
        return base64.b64encode(nonce + AESGCM(self._encrypt_key).encrypt(nonce, data, None)).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            raw = base64.b64decode(token, validate=True)
            return AESGCM(self._encrypt_key).decrypt(raw[:12], raw[12:], None)
        except (ValueError, InvalidTag):
            raise PayloadError("cannot decrypt payload (wrong key?)") from None
