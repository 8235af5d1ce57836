"""``tokens.TokenVerifier``: signatures checked against auth's JWKS, and a token that verified
is remembered but still refused once it expires, its user is revoked or its key retired."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
import pytest
from chat_gateway.tokens import TokenVerifier
from chat_proto import replies
from chat_proto.errors import ChatError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISS, AUD = "chat-auth", "chat"


class Keys:
    """auth's JWKS: ``request(ops.auth.JWKS)`` as the verifier calls it."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.calls = 0

    def add(self) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = Ed25519PrivateKey.generate()
        return kid

    async def request(self, op: Any, req: Any = None, **_: Any) -> replies.Jwks:
        self.calls += 1
        jwks = []
        for kid, k in self.keys.items():
            jwk = json.loads(OKPAlgorithm.to_jwk(k.public_key()))
            jwks.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
        return replies.Jwks(keys=jwks)

    def token(self, kid: str, sub: str = "u1", exp_in: float = 300, typ: str = "access") -> str:
        now = int(time.time())
        claims = {"sub": sub, "iss": ISS, "aud": AUD, "iat": now, "exp": now + exp_in, "typ": typ}
        claims["jti"] = uuid.uuid4().hex
        return jwt.encode(claims, self.keys[kid], algorithm="EdDSA", headers={"kid": kid})


class Deny:
    def __init__(self) -> None:
        self.users: set[str] = set()

    async def ensure_loaded(self) -> None:
        return None

    def refused(self, user_id: str, iat: float) -> bool:
        return user_id in self.users


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def verifier(keys: Keys, deny: Deny | None = None, clock: Clock | None = None, size: int = 100) -> TokenVerifier:
    return TokenVerifier(keys, ISS, AUD, deny, cache_size=size, clock=clock or time.time)  # type: ignore[arg-type]


async def test_a_verified_token_is_remembered_and_refused_once_it_expires() -> None:
    keys, clock = Keys(), Clock()
    kid = keys.add()
    v = verifier(keys, clock=clock)
    token = keys.token(kid, exp_in=60)
    p = await v.verify(token)
    assert p.user_id == "u1"
    calls = jwt.decode
    try:
        jwt.decode = None  # type: ignore[assignment]  # a second check of the signature would fail here
        assert await v.verify(token) == p
    finally:
        jwt.decode = calls
    clock.t = p.exp
    with pytest.raises(ChatError, match="expired"):
        await v.verify(token)


async def test_a_remembered_token_is_refused_when_its_user_is_revoked() -> None:
    keys, deny = Keys(), Deny()
    kid = keys.add()
    v = verifier(keys, deny)
    token = keys.token(kid)
    await v.verify(token)
    deny.users.add("u1")
    with pytest.raises(ChatError, match="revoked"):
        await v.verify(token)


async def test_a_remembered_token_is_refused_once_its_key_is_retired() -> None:
    keys = Keys()
    old = keys.add()
    v = verifier(keys)
    token = keys.token(old)
    await v.verify(token)
    del keys.keys[old]
    new = keys.add()
    await v.refresh(force=True)  # e.g. a token signed by the new key arrived
    await v.verify(keys.token(new))
    with pytest.raises(ChatError, match="unknown signing key"):
        await v.verify(token)


async def test_bad_tokens_are_never_remembered_and_the_cache_is_bounded() -> None:
    keys = Keys()
    kid = keys.add()
    v = verifier(keys, size=3)
    refresh = keys.token(kid, typ="refresh")
    for _ in range(2):
        with pytest.raises(ChatError, match="not an access token"):
            await v.verify(refresh)
    forged = keys.token(kid)[:-4] + "AAAA"
    with pytest.raises(ChatError):
        await v.verify(forged)
    tokens = [keys.token(kid, sub=f"u{i}") for i in range(5)]
    for t in tokens:
        await v.verify(t)
    assert len(v._verified) == 3
    assert [p.user_id for _, p in v._verified.values()] == ["u2", "u3", "u4"]
