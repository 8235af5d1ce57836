"""``chat``: a small command line client on top of the SDK.

    chat login URL USERNAME [--register]     password from $CHAT_PASSWORD or a prompt
    chat convs                               the conversations you belong to
    chat create channel --name general       (also: dm/group with --member USER_ID)
    chat join CONV
    chat send CONV TEXT
    chat history CONV [--limit N]
    chat tail CONV [--count N] [--since SEQ] events as they arrive; Ctrl-C stops
    chat logout

Plain text by default; ``--json`` prints one JSON object per line. Exit status: 0 ok,
1 refused or failed, 3 not logged in / session over, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chat_sdk import credentials
from chat_sdk.client import ChatClient
from chat_sdk.errors import ChatError, Unauthorized
from chat_sdk.models import Conversation, Event, Tokens

EXIT_ERROR = 1
EXIT_AUTH = 3
EXIT_INTERRUPTED = 130


class NotLoggedIn(Exception):
    pass


def _out(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    print(json.dumps(obj, ensure_ascii=False) if args.json else text, flush=True)


def format_event(ev: Event) -> str:
    head = f"[{ev.conv} #{ev.seq}] {ev.ts or ''} {ev.sender or '-'}"
    if ev.kind == "message":
        return f"{head}: {ev.body if ev.body is not None else '(deleted)'}"
    if ev.kind == "edit":
        return f"{head} edited #{ev.target}: {ev.body}"
    if ev.kind == "delete":
        return f"{head} deleted #{ev.target}"
    if ev.kind in ("member_joined", "member_left", "role_changed"):
        return f"{head} {ev.kind} {ev.user_id} {ev.role or ''}".rstrip()
    return f"{head} {ev.kind}"


def format_conv(c: Conversation) -> str:
    name = c.name or "-"
    return f"{c.id}  {c.kind:<7} {name:<24} {c.role or '-':<7} last_seq={c.last_seq} unread={c.unread}"


# -- session ----------------------------------------------------------------------------
def _creds() -> credentials.Credentials:
    creds = credentials.load()
    if creds is None:
        raise NotLoggedIn(f"not logged in (no {credentials.credentials_path()}): run `chat login URL USERNAME`")
    return creds


async def _client(realtime: bool, positions: dict[str, int] | None = None) -> ChatClient:
    creds = _creds()

    def keep(tokens: Tokens) -> None:  # the refresh token rotates: always store the newest
        creds.tokens = tokens
        credentials.save(creds)

    return await ChatClient.connect(
        creds.urls, tokens=creds.tokens, on_tokens=keep, realtime=realtime, positions=positions
    )


# -- commands ---------------------------------------------------------------------------
async def cmd_login(args: argparse.Namespace) -> int:
    urls = [u.strip() for u in args.url.split(",") if u.strip()]
    password = os.environ.get("CHAT_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    if args.register:
        user = await ChatClient.register(urls, args.username, password, args.display_name)
        print(f"registered {user.username} ({user.id})", file=sys.stderr)
    tokens = await ChatClient.login(urls, args.username, password)
    path = credentials.save(credentials.Credentials(urls, args.username, tokens))
    user_id = tokens.user_id or ""
    _out(
        args,
        {"username": args.username, "user_id": user_id, "urls": urls, "credentials": str(path)},
        f"logged in as {args.username} ({user_id}); session stored in {path}",
    )
    return 0


async def cmd_logout(args: argparse.Namespace) -> int:
    creds = credentials.load()
    if creds is not None:
        client = await ChatClient.connect(creds.urls, tokens=creds.tokens, realtime=False)
        await client.close(logout=True)
        credentials.remove()
    _out(args, {"logged_out": creds is not None}, "logged out")
    return 0


async def cmd_convs(args: argparse.Namespace) -> int:
    client = await _client(realtime=False)
    try:
        for c in await client.list_conversations():
            _out(args, c.model_dump(mode="json"), format_conv(c))
    finally:
        await client.close()
    return 0


async def cmd_create(args: argparse.Namespace) -> int:
    client = await _client(realtime=False)
    try:
        c = await client.create_conversation(
            args.kind, name=args.name, private=True if args.private else None, members=args.member or []
        )
        _out(args, c.model_dump(mode="json"), format_conv(c))
    finally:
        await client.close()
    return 0


async def cmd_join(args: argparse.Namespace) -> int:
    client = await _client(realtime=False)
    try:
        c = await client.join(args.conv)
        _out(args, c.model_dump(mode="json"), format_conv(c))
    finally:
        await client.close()
    return 0


async def cmd_send(args: argparse.Namespace) -> int:
    client = await _client(realtime=False)
    try:
        res = await client.send(
            args.conv, args.text, client_msg_id=args.client_msg_id, reply_to=args.reply_to, attachments=args.attach
        )
        _out(args, res.model_dump(mode="json"), f"sent #{res.seq} to {res.conv} at {res.ts}")
    finally:
        await client.close()
    return 0


async def cmd_search(args: argparse.Namespace) -> int:
    client = await _client(realtime=False)
    try:
        page = await client.search(args.text, conv=args.conv, limit=args.limit, cursor=args.cursor)
        for hit in page.hits:
            _out(
                args,
                {"event": hit.event.model_dump(mode="json", exclude_none=True), "highlight": hit.highlight},
                format_event(hit.event),
            )
        if page.next_cursor and not args.json:
            print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
    finally:
        await client.close()
    return 0


async def cmd_upload(args: argparse.Namespace) -> int:
    data = await asyncio.to_thread(Path(args.file).read_bytes)
    client = await _client(realtime=False)
    try:
        up = await client.upload(data, name=args.name or Path(args.file).name)
        dims = f" {up.width}x{up.height}" if up.width else ""
        _out(
            args, up.model_dump(mode="json", exclude_none=True), f"{up.media_id} {up.mime}{dims} {up.size} B {up.name}"
        )
    finally:
        await client.close()
    return 0


async def cmd_download(args: argparse.Namespace) -> int:
    client = await _client(realtime=False)
    try:
        data = await client.download(args.media_id, thumbnail=args.thumbnail)
    finally:
        await client.close()
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        await asyncio.to_thread(Path(args.output).write_bytes, data)
        print(f"{len(data)} bytes -> {args.output}", file=sys.stderr)
    return 0


async def cmd_history(args: argparse.Namespace) -> int:
    client = await _client(realtime=False)
    try:
        page = await client.history(args.conv, before=args.before, after=args.after, limit=args.limit)
        for ev in page.events:
            _out(args, ev.model_dump(mode="json", exclude_none=True), format_event(ev))
    finally:
        await client.close()
    return 0


async def cmd_tail(args: argparse.Namespace) -> int:
    positions = {args.conv: args.since} if args.since is not None else None
    client = await _client(realtime=True, positions=positions)
    seen = 0
    try:
        print(f"tailing {args.conv} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        async for item in client.events():
            if not isinstance(item, Event) or item.conv != args.conv:
                continue
            _out(args, item.model_dump(mode="json", exclude_none=True), format_event(item))
            seen += 1
            if args.count is not None and seen >= args.count:
                break
    finally:
        await client.close()
    return 0


# -- parsing ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="one JSON object per line")
    p = argparse.ArgumentParser(prog="chat", description="Command line client for the chat backend.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("login", parents=[common], help="log in and store the session")
    s.add_argument("url", help="gateway base URL, e.g. http://127.0.0.1:8080 (comma-separate several)")
    s.add_argument("username")
    s.add_argument("--register", action="store_true", help="create the account first")
    s.add_argument("--display-name")
    s.set_defaults(func=cmd_login)

    sub.add_parser("logout", parents=[common], help="revoke and forget the session").set_defaults(func=cmd_logout)
    sub.add_parser("convs", parents=[common], help="list your conversations").set_defaults(func=cmd_convs)

    s = sub.add_parser("create", parents=[common], help="create a conversation")
    s.add_argument("kind", choices=["channel", "group", "dm"])
    s.add_argument("--name")
    s.add_argument("--private", action="store_true")
    s.add_argument("--member", action="append", metavar="USER_ID", help="another member (repeatable)")
    s.set_defaults(func=cmd_create)

    s = sub.add_parser("join", parents=[common], help="join a public channel")
    s.add_argument("conv")
    s.set_defaults(func=cmd_join)

    _messages_commands(sub, common)
    return p


def _messages_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("send", parents=[common], help="send a message; prints its seq")
    s.add_argument("conv")
    s.add_argument("text")
    s.add_argument("--client-msg-id", help="idempotency key (default: random)")
    s.add_argument("--reply-to", type=int, metavar="SEQ")
    s.add_argument("--attach", action="append", metavar="MEDIA_ID", help="an upload of yours (repeatable)")
    s.set_defaults(func=cmd_send)

    s = sub.add_parser("search", parents=[common], help="search the messages of your conversations")
    s.add_argument("text")
    s.add_argument("--conv", help="only this conversation")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--cursor", help="next_cursor of the previous page")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("upload", parents=[common], help="upload a file; prints its media id")
    s.add_argument("file")
    s.add_argument("--name", help="display name (default: the file's name)")
    s.set_defaults(func=cmd_upload)

    s = sub.add_parser("download", parents=[common], help="save an upload or attachment")
    s.add_argument("media_id")
    s.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    s.add_argument("--thumbnail", action="store_true")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("history", parents=[common], help="print stored events (oldest first)")
    s.add_argument("conv")
    s.add_argument("--limit", type=int, default=50)
    s.add_argument("--before", type=int, metavar="SEQ")
    s.add_argument("--after", type=int, metavar="SEQ")
    s.set_defaults(func=cmd_history)

    s = sub.add_parser("tail", parents=[common], help="print events as they arrive (Ctrl-C stops)")
    s.add_argument("conv")
    s.add_argument("--count", type=int, metavar="N", help="stop after N events")
    s.add_argument("--since", type=int, metavar="SEQ", help="start after this seq (default: now)")
    s.set_defaults(func=cmd_tail)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(asyncio.run(args.func(args)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except NotLoggedIn as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return EXIT_AUTH
    except Unauthorized as exc:
        print(f"chat: {exc} (log in again with `chat login`)", file=sys.stderr)
        return EXIT_AUTH
    except ChatError as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
