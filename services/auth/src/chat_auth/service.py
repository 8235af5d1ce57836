"""Auth rules. No FastAPI, no NATS: called by rpc.py, talks to store.py."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NoReturn

from chat_proto.auth_api import TokenPair, UserOut
from chat_proto.errors import ChatError, ErrorCode
from chat_proto.text import strip_hidden
from chat_proto.timefmt import epoch_ms
from chat_proto.timefmt import now as utc_now

from chat_auth import keys as signing_keys
from chat_auth.models import SigningKey, User
from chat_auth.passwords import HashPool, Passwords
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore, UsernameTaken
from chat_auth.tokens import TokenIssuer, new_private_key_pem

log = logging.getLogger("chat.auth")

BAD_CREDENTIALS = "invalid username or password"
BAD_REFRESH = "invalid or expired refresh token"
# Only ever said to a caller who gave the right password.
ACCOUNT_DEACTIVATED = "this account is deactivated"
DISPLAY_NAME_MAX = 64
# C0/C1 controls, DEL, and bidi embedding/override/isolate marks.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


def clean_display_name(raw: str | None, username: str) -> str:
    name = strip_hidden(_CONTROL_RE.sub("", raw or "")).strip()[:DISPLAY_NAME_MAX].strip()
    return name or username


def user_out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username, display_name=user.display_name)


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_refresh() -> tuple[str, str, str]:
    """(token_id, secret_hash, token string). The string is ``<id>.<secret>``."""
    token_id = uuid.uuid4().hex
    secret = secrets.token_urlsafe(32)
    return token_id, _secret_hash(secret), f"{token_id}.{secret}"


class AuthService:
    def __init__(
        self, settings: AuthSettings, store: AuthStore, clock: Clock = utc_now, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._s = settings
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._passwords = Passwords(
            settings.argon2_memory_kib,
            settings.argon2_time_cost,
            settings.argon2_parallelism,
            HashPool(settings.hash_workers, settings.hash_queue),
        )
        self._tokens = TokenIssuer(settings.issuer, settings.audience, settings.access_ttl_s)

    @property
    def tokens(self) -> TokenIssuer:
        return self._tokens

    # --- start-up ------------------------------------------------------------

    async def ensure_signing_key(self) -> None:
        """Load active keys; create the first one if none (race-safe across replicas)."""
        keys = await self._store.active_keys()
        if not keys:
            kid, pem = new_private_key_pem()
            created = await self._store.insert_key(
                SigningKey(kid=kid, generation=1, private_key_pem=pem, created_at=self._clock(), active=True)
            )
            log.info("signing key bootstrap", extra={"kid": kid, "inserted": created})
        await self.reload_keys()

    async def reload_keys(self) -> None:
        """The active keys from the database (a rotation by another replica or by
        ``chat-admin keys rotate`` shows up here: chat_auth.keys)."""
        keys = await self._store.active_keys()
        if keys:
            self._tokens.set_keys(signing_keys.loaded(keys, self._s.key_publish_lead_s))

    async def reload_keys_forever(self, every_s: float) -> None:
        """Keys rotated elsewhere are published (and sign, once their time comes) here too."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.reload_keys()
            except Exception as exc:  # the database is away: the keys loaded last stay in use
                log.warning("signing keys not reloaded", extra={"error": repr(exc)})

    # --- ops -------------------------------------------------------------------

    async def register(
        self, username: str, password: str, display_name: str | None, bootstrap_token: str | None = None
    ) -> UserOut:
        claim = await self._may_claim_admin(bootstrap_token)
        password_hash = await self._passwords.hash(password)
        try:
            user = await self._store.create_user(
                uuid.uuid4().hex,
                username,
                clean_display_name(display_name, username),
                password_hash,
                self._clock(),
                claim_admin=claim,
            )
        except UsernameTaken:
            raise ChatError(ErrorCode.CONFLICT, "username is taken") from None
        if user.is_admin:
            how = "bootstrap token" if bootstrap_token else f"first user ({self._s.environment} convenience)"
            log.warning("user registered as the first admin", extra={"user": user.id, "how": how})
        else:
            log.info("user registered", extra={"user": user.id})
        return user_out(user)

    async def _may_claim_admin(self, token: str | None) -> bool:
        """Whether this registration may become the first admin: with the right bootstrap
        token (403 for a wrong one, 409 once an admin exists); otherwise only outside
        production, where the first user to register is made admin."""
        expected = self._s.bootstrap_admin_token.get_secret_value()
        if token is None:
            return self._s.environment != "production"
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise ChatError(ErrorCode.FORBIDDEN, "wrong bootstrap token")
        if await self._store.bootstrapped():
            raise ChatError(ErrorCode.CONFLICT, "the first admin exists already")
        return True

    async def login(self, username: str, password: str, client_ip: str | None = None) -> TokenPair:
        """Failures are counted per (username, client address): a flood of wrong passwords
        from one address locks that address out of that name, never the owner elsewhere."""
        now = self._clock()
        client = (client_ip or "")[:64]
        await self._check_lock(username, client, now)
        user = await self._store.user_by_username(username)
        ok = await self._passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None:
            await self._record_failure(username, client, now)
            # never the typed name: it may be a password typed into the wrong field
            log.info("login failed", extra={"user": user.id if user else None, "client_ip": client_ip})
            raise ChatError(ErrorCode.UNAUTHORIZED, BAD_CREDENTIALS)
        if user.deactivated_at is not None:
            log.info("login refused: deactivated", extra={"user": user.id, "client_ip": client_ip})
            raise ChatError(ErrorCode.UNAUTHORIZED, ACCOUNT_DEACTIVATED)
        await self._store.reset_throttle(username, client)
        if self._passwords.needs_rehash(user.password_hash):
            await self._store.set_password_hash(user.id, await self._passwords.hash(password))
        family_id = uuid.uuid4().hex
        token_id, secret_hash, refresh = _new_refresh()
        await self._store.create_family(family_id, user.id, token_id, secret_hash, now, self._refresh_expiry(now))
        log.info("login", extra={"user": user.id, "sid": family_id, "client_ip": client_ip})
        return await self._pair(user, family_id, refresh)

    async def refresh(self, token: str) -> TokenPair:
        now = self._clock()
        token_id, _, secret = token.partition(".")
        row = await self._store.get_refresh(token_id) if token_id and secret else None
        if row is None or not hmac.compare_digest(row.token.secret_hash, _secret_hash(secret)):
            raise ChatError(ErrorCode.UNAUTHORIZED, BAD_REFRESH)
        family = row.family
        if row.token.spent_at is not None:
            await self._reuse_detected(family.id, row.user.id, now)
        if family.revoked_at is not None or row.token.expires_at <= now:
            raise ChatError(ErrorCode.UNAUTHORIZED, BAD_REFRESH)
        if row.user.deactivated_at is not None:
            await self._store.revoke_family(family.id, now)
            raise ChatError(ErrorCode.UNAUTHORIZED, BAD_REFRESH)
        new_id, secret_hash, new_token = _new_refresh()
        if not await self._store.rotate(row.token.id, new_id, secret_hash, now, self._refresh_expiry(now)):
            await self._reuse_detected(family.id, row.user.id, now)
        return await self._pair(row.user, family.id, new_token)

    async def logout(self, token: str) -> dict[str, Any]:
        """Revoke the token's family. Idempotent: unknown tokens succeed too."""
        token_id, _, secret = token.partition(".")
        row = await self._store.get_refresh(token_id) if token_id and secret else None
        if row is not None and hmac.compare_digest(row.token.secret_hash, _secret_hash(secret)):
            await self._store.revoke_family(row.family.id, self._clock())
            log.info("logout", extra={"user": row.user.id, "sid": row.family.id})
        return {}

    def jwks(self) -> dict[str, Any]:
        return self._tokens.jwks()

    async def get_user(self, user_id: str) -> UserOut:
        user = await self._store.user_by_id(user_id)
        if user is None:
            raise ChatError(ErrorCode.NOT_FOUND, "no such user")
        return user_out(user)

    async def users_exist(self, user_ids: Iterable[str]) -> dict[str, list[str]]:
        """Ids that are unknown or deactivated, in request order, without duplicates."""
        ids = list(dict.fromkeys(user_ids))
        found = await self._store.existing_active_ids(ids)
        return {"missing": [i for i in ids if i not in found]}

    # --- helpers ---------------------------------------------------------------

    async def _pair(self, user: User, family_id: str, refresh: str) -> TokenPair:
        now = await self._issue_time(user)
        return TokenPair(
            access_token=self._tokens.issue(user.id, family_id, now),
            refresh_token=refresh,
            expires_in=self._s.access_ttl_s,
            user=user_out(user),
        )

    async def _issue_time(self, user: User) -> datetime:
        """Gateways refuse tokens with ``iat <= tokens_revoked_at`` (both in milliseconds):
        a token issued in the same millisecond as the last revocation (a login right after
        a reactivation) would look revoked, so wait until the clock has passed it. A loop,
        not one sleep: timers may fire early (uvloop rounds them to whole milliseconds),
        and another replica's clock may lag the one that revoked."""
        now = self._clock()
        revoked = user.tokens_revoked_at
        if revoked is None:
            return now
        floor = epoch_ms(revoked)
        while (ahead := floor - epoch_ms(now)) >= 0:
            await self._sleep((ahead + 1) / 1000)
            now = self._clock()
        return now

    def _refresh_expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._s.refresh_ttl_s)

    async def _reuse_detected(self, family_id: str, user_id: str, now: datetime) -> NoReturn:
        await self._store.revoke_family(family_id, now)
        log.warning("refresh token reuse; family revoked", extra={"user": user_id, "sid": family_id})
        raise ChatError(ErrorCode.UNAUTHORIZED, BAD_REFRESH)

    async def _check_lock(self, username: str, client: str, now: datetime) -> None:
        locked_until = await self._store.throttle_locked_until(username, client)
        if locked_until is not None and locked_until > now:
            raise self._rate_limited(locked_until, now)

    async def _record_failure(self, username: str, client: str, now: datetime) -> None:
        s = self._s

        def lockout_for(n: int) -> timedelta:
            seconds = min(s.login_lockout_base_s * 2 ** min(n - 1, 30), s.login_lockout_max_s)
            return timedelta(seconds=seconds)

        await self._store.record_failure(
            username,
            client,
            now,
            now - timedelta(seconds=s.login_failure_window_s),
            s.login_max_failures,
            lockout_for,
        )

    @staticmethod
    def _rate_limited(locked_until: datetime, now: datetime) -> ChatError:
        ms = max(1, math.ceil((locked_until - now).total_seconds() * 1000))
        return ChatError(ErrorCode.RATE_LIMITED, "too many failed logins; try again later", retry_after_ms=ms)
