"""``chat-admin`` (also ``python -m chat_auth.admin``): account state for operators.

    chat-admin bootstrap USERNAME       (the first admin, once: refused when one exists)
    chat-admin set-admin USERNAME [--off]
    chat-admin deactivate USERNAME
    chat-admin reactivate USERNAME
    chat-admin list-admins
    chat-admin keys rotate | list        (token signing keys: chat_auth.keys)
    chat-admin search reindex | status   (the search index: chat_search.admin, when installed)

Uses the auth settings (``AUTH_DATABASE_URL``, ``AUTH_NATS_URL``) and the service's own
store/service code. ``deactivate`` publishes the revocation on NATS; when NATS cannot be
reached it warns, and gateways learn it at their next revocations resync (at most
``GATEWAY_REVOCATION_RESYNC_S`` later) or start. Exit codes: 0 ok, 1 unknown user or
refused, 2 usage, 3 database error (unreachable, not migrated).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import nats
from chat_bus.bus import NatsAuth
from chat_bus.bus import close as close_bus
from chat_common.db import make_engine
from chat_proto.auth_api import AccountOut, UserRevoked
from chat_proto.errors import ChatError
from nats.aio.client import Client as NATS
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from chat_auth import keys as signing_keys
from chat_auth.accounts import AccountsService
from chat_auth.accounts_store import AccountsStore
from chat_auth.publish import NatsRevocationPublisher
from chat_auth.settings import AuthSettings
from chat_auth.store import AuthStore

NATS_CONNECT_TIMEOUT_S = 3.0
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_DATABASE = 0, 1, 2, 3


class _Publisher:
    """Publishes over NATS when connected; remembers whether every publish went out."""

    def __init__(self, nc: NATS | None) -> None:
        self.inner = NatsRevocationPublisher(nc) if nc is not None else None
        self.failed = False

    async def publish(self, event: UserRevoked) -> None:
        if self.inner is None:
            self.failed = True
            return
        try:
            await self.inner.publish(event)
        except Exception:
            self.failed = True
            raise


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chat-admin", description="Account state of chat users (operators).")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "bootstrap", help="make USERNAME the first admin (only while there is none; production has no implicit one)"
    ).add_argument("username")
    s = sub.add_parser("set-admin", help="grant (or with --off revoke) the global admin flag")
    s.add_argument("username")
    s.add_argument("--off", action="store_true", help="remove the flag instead")
    sub.add_parser("deactivate", help="deactivate a user and revoke their sessions").add_argument("username")
    sub.add_parser("reactivate", help="allow a deactivated user to log in again").add_argument("username")
    sub.add_parser("list-admins", help="list users with the admin flag")
    keys = sub.add_parser("keys", help="token signing keys: `rotate` adds the next one, `list` shows them")
    keys.add_argument("action", choices=["rotate", "list"])
    sub.add_parser("search", help="the search index: `chat-admin search reindex|status` (see its --help)")
    return p


def _line(a: AccountOut) -> str:
    state = f"deactivated {a.deactivated_at}" if a.deactivated else "active"
    return f"{a.username}\t{a.id}\tadmin={'yes' if a.admin else 'no'}\t{state}"


async def _connect_nats(url: str, auth: NatsAuth) -> NATS | None:
    async def quiet(_exc: Exception) -> None:
        pass

    try:
        # max_reconnect_attempts must be > 0 for nats-py to give up on the first connect
        return await asyncio.wait_for(
            nats.connect(
                servers=url.split(","),
                name="chat-admin",
                allow_reconnect=False,
                connect_timeout=2,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=quiet,
                **auth.connect_options(),
            ),
            NATS_CONNECT_TIMEOUT_S,
        )
    except Exception:
        return None


async def _run(args: argparse.Namespace, accounts: AccountsService) -> int:
    if args.command == "list-admins":
        for a in await accounts.admins():
            print(_line(a))
        return EXIT_OK
    user_id = await accounts.user_id_by_username(args.username)
    if args.command == "bootstrap":
        out = await accounts.bootstrap(user_id)
    elif args.command == "set-admin":
        out = await accounts.set_admin(user_id, not args.off)
    elif args.command == "deactivate":
        out = await accounts.deactivate(user_id)
    else:
        out = await accounts.reactivate(user_id)
    print(_line(out))
    return EXIT_OK


async def _keys(args: argparse.Namespace, settings: AuthSettings, engine: AsyncEngine) -> int:
    store = AuthStore(engine)
    lead = settings.key_publish_lead_s
    if args.action == "rotate":
        r = await signing_keys.rotate(store, datetime.now(UTC), lead, settings.access_ttl_s)
        print(f"added {r.kid}\tgeneration={r.generation}\tsigns from {_when(r.signs_from)}")
        for kid in r.retired:
            print(f"retired {kid}")
        return EXIT_OK
    for k in await store.active_keys():
        print(
            f"{k.kid}\tgeneration={k.generation}\tcreated {_when(k.created_at.timestamp())}"
            f"\tsigns from {_when(signing_keys.signs_from(k, lead))}"
        )
    return EXIT_OK


def _when(t: float) -> str:
    return "the start" if t <= 0 else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def amain(args: argparse.Namespace, settings: AuthSettings) -> int:
    engine = make_engine(settings.database_url, 1)
    if args.command == "keys":
        try:
            return await _keys(args, settings, engine)
        except (SQLAlchemyError, RuntimeError) as exc:
            print(f"chat-admin: {exc.__class__.__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
            return EXIT_DATABASE
        finally:
            await engine.dispose()
    nc = await _connect_nats(settings.nats_url, settings.nats_auth("auth")) if args.command == "deactivate" else None
    publisher = _Publisher(nc)
    try:
        code = await _run(args, AccountsService(AccountsStore(engine), publisher))
    except ChatError as err:
        print(f"chat-admin: {err.message}", file=sys.stderr)
        return EXIT_REFUSED
    except SQLAlchemyError as exc:
        print(
            f"chat-admin: database error ({settings.database_url.split('://')[0]}): {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}",
            file=sys.stderr,
        )
        return EXIT_DATABASE
    finally:
        if nc is not None:
            await close_bus(nc)
        await engine.dispose()
    if publisher.failed:
        print(
            f"chat-admin: WARNING: could not publish the revocation on NATS ({settings.nats_url}); "
            "gateways will refuse the user's tokens after their next revocations resync",
            file=sys.stderr,
        )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["search"]:  # the search service's own commands
        try:
            from chat_search.admin import main as search_main
        except ImportError:
            print("chat-admin: the search service (chat_search) is not installed here", file=sys.stderr)
            return EXIT_USAGE
        return search_main(argv[1:])
    args = parser().parse_args(argv)  # exits 2 on bad usage
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)  # the warnings below say it
    return asyncio.run(amain(args, AuthSettings()))


if __name__ == "__main__":
    sys.exit(main())
