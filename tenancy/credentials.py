"""Issuing and checking secret credentials (personal API tokens, tenant API keys).

A credential is ``<kind>_<key id>_<secret>``. Only the key id (to find the row) and the SHA-256 digest of
the whole credential are stored; the plaintext is returned once, at creation. A fast digest is the right
tool here: the secret carries 256 random bits, so there is nothing to brute-force, and the serving
adapter must check a key on every model call without adding latency. Slow hashes (Argon2, the password
hasher) are for low-entropy human passwords.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from tenancy.constants import CREDENTIAL_KEY_ID_BYTES, CREDENTIAL_SECRET_BYTES


@dataclass(frozen=True)
class IssuedCredential:
    key_id: str
    plaintext: str
    digest: str


def credential_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def credential_issue(kind: str) -> IssuedCredential:
    key_id = secrets.token_hex(CREDENTIAL_KEY_ID_BYTES)
    plaintext = f"{kind}_{key_id}_{secrets.token_urlsafe(CREDENTIAL_SECRET_BYTES)}"
    return IssuedCredential(key_id=key_id, plaintext=plaintext, digest=credential_digest(plaintext))


def credential_key_id(plaintext: str, kind: str) -> str | None:
    """The key id of a credential of ``kind``, or None when it is not shaped like one."""
    head, sep, rest = plaintext.partition(f"{kind}_")
    if head or not sep:
        return None
    key_id, sep, secret = rest.partition("_")
    if not sep or not secret or len(key_id) != CREDENTIAL_KEY_ID_BYTES * 2:
        return None
    return key_id


def credential_matches(plaintext: str, digest: str) -> bool:
    return hmac.compare_digest(credential_digest(plaintext), digest)
