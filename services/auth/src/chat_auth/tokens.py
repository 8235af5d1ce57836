"""Access tokens: EdDSA (Ed25519) JWTs; signing keys live in the database."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from chat_proto.auth_api import ACCESS_TOKEN_TYPE
from chat_proto.timefmt import epoch_ms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ALGORITHM = "EdDSA"
HEADER_TYP = "at+jwt"


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    private_key: Ed25519PrivateKey
    # epoch seconds from which it may sign (published in the JWKS before: chat_auth.keys)
    signs_from: float = 0.0

    def jwk(self) -> dict[str, Any]:
        pub = self.private_key.public_key()
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(pub))
        jwk.update({"kid": self.kid, "alg": ALGORITHM, "use": "sig"})
        return jwk


def new_private_key_pem() -> tuple[str, str]:
    """A fresh (kid, PKCS#8 PEM) pair."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return secrets.token_urlsafe(12), pem


def load_key(kid: str, pem: str, signs_from: float = 0.0) -> LoadedKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"signing key {kid} is not Ed25519")
    return LoadedKey(kid, key, signs_from)


class TokenIssuer:
    def __init__(self, issuer: str, audience: str, ttl_s: int) -> None:
        self.issuer = issuer
        self.audience = audience
        self.ttl_s = ttl_s
        self._signing: LoadedKey | None = None
        self._keys: list[LoadedKey] = []

    def set_keys(self, keys: list[LoadedKey]) -> None:
        """Active keys, oldest first, all published; the newest whose ``signs_from`` has come
        signs (all replicas agree on it), else the oldest."""
        if not keys:
            raise ValueError("no active signing key")
        self._keys = list(keys)
        self._signing = keys[0]

    def signing_key(self, now: datetime) -> LoadedKey:
        t = now.timestamp()
        ready = [k for k in self._keys if k.signs_from <= t]
        return ready[-1] if ready else self._keys[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self._keys]}

    def issue(self, user_id: str, session_id: str, now: datetime) -> str:
        assert self._signing is not None, "signing keys not loaded"
        key = self.signing_key(now)
        # Millisecond precision (RFC 7519 NumericDate may be fractional): gateways refuse a
        # revoked user's tokens with ``iat <= revoked_at``, and revocations carry milliseconds.
        iat = epoch_ms(now) / 1000
        claims = {
            "sub": user_id,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": iat,
            "exp": int((now + timedelta(seconds=self.ttl_s)).timestamp()),
            "jti": secrets.token_urlsafe(16),
            "typ": ACCESS_TOKEN_TYPE,
            "sid": session_id,
        }
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": HEADER_TYP},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Reference verification (what the gateway should do with the JWKS)."""
        header = jwt.get_unverified_header(token)
        key = next((k for k in self._keys if k.kid == header.get("kid")), None)
        if key is None or header.get("alg") != ALGORITHM or header.get("typ") != HEADER_TYP:
            raise jwt.InvalidTokenError("unknown key or wrong header")
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[ALGORITHM],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["sub", "iss", "aud", "iat", "exp", "jti", "typ"]},
        )
        if claims.get("typ") != ACCESS_TOKEN_TYPE:
            raise jwt.InvalidTokenError("not an access token")
        return claims
