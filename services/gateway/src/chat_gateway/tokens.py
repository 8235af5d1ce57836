"""Access-token verification with keys from auth's JWKS (cached, refreshed on unknown kid).

A token that verified is remembered (``VERIFIED_CACHE`` of them, the least recently used
forgotten first): a client sends the same access token with every REST call until it
refreshes, and the signature check was ~10 % of the gateway's CPU on a page of history
(bench/history.py). A remembered token is still refused once it expires (``exp``), once its
user is revoked, and when the key that signed it is no longer the one of its ``kid`` (a
JWKS refresh that retired or replaced it). Only tokens that verified are remembered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import jwt
from chat_bus.rpc import RpcClient
from chat_proto import ops
from chat_proto.auth_api import ACCESS_TOKEN_TYPE
from chat_proto.errors import ChatError, ErrorCode
from jwt import PyJWK

log = logging.getLogger("chat.gateway.tokens")

ALLOWED_ALGS = ["EdDSA", "RS256"]  # asymmetric only: "none" and HS* can never verify
JWKS_MIN_REFRESH_S = 5.0
VERIFIED_CACHE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """What the gateway uses of a verified access token (a connection keeps it for its
    life: not the whole claims dict)."""

    user_id: str
    exp: float
    session: str | None
    iat: float


class DenyList(Protocol):
    """Revoked users (``revocations.Revocations``)."""

    async def ensure_loaded(self) -> None: ...

    def refused(self, user_id: str, iat: float) -> bool: ...


class TokenVerifier:
    def __init__(
        self,
        rpc: RpcClient,
        issuer: str,
        audience: str,
        deny: DenyList | None = None,
        *,
        cache_size: int = VERIFIED_CACHE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rpc = rpc
        self.issuer = issuer
        self.audience = audience
        self.deny = deny
        self.cache_size = cache_size
        self.clock = clock
        # token -> (the key that verified it, what it says)
        self._verified: OrderedDict[str, tuple[PyJWK, Principal]] = OrderedDict()
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < JWKS_MIN_REFRESH_S:
                return
            res = await self.rpc.request(ops.auth.JWKS)
            keys: dict[str, PyJWK] = {}
            for jwk in res.keys:
                try:
                    keys[jwk["kid"]] = PyJWK(jwk)
                except Exception:
                    log.warning("unusable jwk", extra={"kid": jwk.get("kid")})
            self._keys = keys
            self._fetched_at = time.monotonic()

    async def _key(self, kid: str) -> PyJWK:
        key = self._keys.get(kid)
        if key is None:
            try:
                await self.refresh()
            except ChatError as err:
                raise ChatError(ErrorCode.UNAVAILABLE, "cannot fetch signing keys") from err
            key = self._keys.get(kid)
        if key is None:
            raise ChatError(ErrorCode.UNAUTHORIZED, "unknown signing key")
        return key

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            key, principal = known
            if self.clock() >= principal.exp:
                del self._verified[token]
                raise ChatError(ErrorCode.UNAUTHORIZED, "token expired")
            if any(k is key for k in self._keys.values()):  # the key is still current
                self._verified.move_to_end(token)
                await self._check_revoked(principal)
                return principal
            del self._verified[token]
        principal, key = await self._verify_signed(token)
        await self._check_revoked(principal)
        self._verified[token] = (key, principal)
        if len(self._verified) > self.cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _check_revoked(self, principal: Principal) -> None:
        if self.deny is not None:
            await self.deny.ensure_loaded()
            if self.revoked(principal):
                raise ChatError(ErrorCode.UNAUTHORIZED, "token revoked")

    async def _verify_signed(self, token: str) -> tuple[Principal, PyJWK]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise ChatError(ErrorCode.UNAUTHORIZED, "malformed token") from exc
        kid, alg = header.get("kid"), header.get("alg")
        if not isinstance(kid, str) or alg not in ALLOWED_ALGS:
            raise ChatError(ErrorCode.UNAUTHORIZED, "unacceptable token")
        key = await self._key(kid)
        if key.algorithm_name != alg:
            raise ChatError(ErrorCode.UNAUTHORIZED, "algorithm does not match key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ChatError(ErrorCode.UNAUTHORIZED, "token expired") from exc
        except jwt.PyJWTError as exc:
            raise ChatError(ErrorCode.UNAUTHORIZED, "invalid token") from exc
        if claims.get("typ") != ACCESS_TOKEN_TYPE or not isinstance(claims.get("sub"), str):
            raise ChatError(ErrorCode.UNAUTHORIZED, "not an access token")
        return Principal(claims["sub"], float(claims["exp"]), claims.get("sid"), float(claims["iat"])), key

    def revoked(self, principal: Principal) -> bool:
        """The user was deactivated after this token was issued."""
        return self.deny is not None and self.deny.refused(principal.user_id, principal.iat)
