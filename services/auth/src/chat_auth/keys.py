"""Signing-key rotation: a new key is published in the JWKS before it signs, and an old key
stays published until every access token it signed has expired.

- ``rotate``: adds the next generation. Every auth replica publishes it at its next key
  reload (``AUTH_KEY_RELOAD_S``) and signs with it from ``AUTH_KEY_PUBLISH_LEAD_S`` after
  its creation (verifiers that cache the JWKS have had that long to see it; a gateway also
  fetches the JWKS again on an unknown ``kid``). Keys superseded for longer than the access
  token lifetime (plus a minute of clock leeway) are retired in the same step.
- ``signs_from``: when a key may sign. The first key signs at once (nothing published
  before it could be waiting on it).
All replicas agree on the signing key: the newest one whose time has come.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat_auth.models import SigningKey
from chat_auth.store import AuthStore
from chat_auth.tokens import LoadedKey, load_key, new_private_key_pem

RETIRE_LEEWAY_S = 60.0


def signs_from(key: SigningKey, lead_s: float) -> float:
    """Epoch seconds from which ``key`` may sign."""
    return 0.0 if key.generation == 1 else key.created_at.timestamp() + lead_s


def loaded(keys: list[SigningKey], lead_s: float) -> list[LoadedKey]:
    return [load_key(k.kid, k.private_key_pem, signs_from(k, lead_s)) for k in keys]


@dataclass(frozen=True)
class Rotation:
    kid: str
    generation: int
    signs_from: float
    retired: list[str]


async def rotate(store: AuthStore, now: datetime, lead_s: float, access_ttl_s: float) -> Rotation:
    keys = await store.active_keys()
    generation = max((k.generation for k in keys), default=0) + 1
    kid, pem = new_private_key_pem()
    key = SigningKey(kid=kid, generation=generation, private_key_pem=pem, created_at=now, active=True)
    if not await store.insert_key(key):
        raise RuntimeError("another rotation added that generation at the same time; run it again")
    retired = [k.kid for k in retirable(keys, now.timestamp(), lead_s, access_ttl_s)]
    await store.deactivate_keys(retired)
    return Rotation(kid, generation, signs_from(key, lead_s), retired)


def retirable(keys: list[SigningKey], now: float, lead_s: float, access_ttl_s: float) -> list[SigningKey]:
    """Keys (oldest first) whose successor has signed for longer than a token lives."""
    out = []
    for i, k in enumerate(keys[:-1]):
        successor_since = min(signs_from(n, lead_s) for n in keys[i + 1 :])
        if successor_since + access_ttl_s + RETIRE_LEEWAY_S <= now:
            out.append(k)
    return out
