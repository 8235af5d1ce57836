"""REST (``/v1``) over httpx: problem+json → typed errors, failover across gateways.

A request that could not even connect (so it was never sent) moves to the next gateway URL
and is tried again there, once per URL; nothing else is retried here, since a request that
reached a server may have had an effect (a refresh token is spent on first use).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from chat_sdk.errors import ChatError, Unauthorized, Unavailable, error_from_code
from chat_sdk.models import Tokens, User


class Endpoints:
    """The gateway base URLs and which one is in use (shared by REST and the WebSocket)."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        lst = [urls] if isinstance(urls, str) else list(urls)
        if not lst:
            raise ValueError("at least one gateway URL is needed")
        self.urls = [u.rstrip("/") for u in lst]
        self.index = 0

    @property
    def current(self) -> str:
        return self.urls[self.index]

    def failed(self, url: str) -> None:
        """``url`` did not work: move on, unless another caller already did."""
        if self.urls[self.index] == url:
            self.index = (self.index + 1) % len(self.urls)

    def ws_url(self, url: str | None = None) -> str:
        base = url or self.current
        if base.startswith("https://"):
            return "wss://" + base[len("https://") :] + "/ws"
        if base.startswith("http://"):
            return "ws://" + base[len("http://") :] + "/ws"
        return base + "/ws"


def raise_for_problem(r: httpx.Response) -> None:
    if r.status_code < 400:
        return
    body: dict[str, Any] = {}
    try:
        data = r.json()
        body = data if isinstance(data, dict) else {}
    except ValueError:
        pass
    retry: float | None = None
    if isinstance(body.get("retry_after_ms"), int | float):
        retry = float(body["retry_after_ms"]) / 1000
    elif r.headers.get("retry-after", "").isdigit():
        retry = float(r.headers["retry-after"])
    message = str(body.get("detail") or body.get("message") or body.get("title") or r.reason_phrase)
    raise error_from_code(body.get("code"), message, status=r.status_code, retry_after=retry, body=body)


class Rest:
    """Unauthenticated and authenticated calls. ``token`` gives the current access token;
    ``refresh`` (given the token that was refused) refreshes it; a 401 on an authenticated
    call refreshes once and retries."""

    def __init__(self, endpoints: Endpoints, *, timeout: float = 30.0) -> None:
        self.endpoints = endpoints
        self.http = httpx.AsyncClient(timeout=timeout, headers={"Accept": "application/json"})
        self.token: Callable[[], str] | None = None
        self.refresh: Callable[[str], Awaitable[object]] | None = None

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, method: str, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
        last: Exception | None = None
        for _ in range(len(self.endpoints.urls)):
            url = self.endpoints.current
            try:
                return await self.http.request(method, url + path, headers=headers, **kw)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc
                self.endpoints.failed(url)
        raise Unavailable(f"no gateway reachable ({last})")

    async def call(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> Any:
        """JSON answer of ``method path`` (None for 204). Errors raise typed exceptions;
        transport errors other than connect failures raise :class:`Unavailable`."""
        return (await self.call_status(method, path, auth=auth, **kw))[1]

    async def call_status(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> tuple[int, Any]:
        """Like :meth:`call`, with the HTTP status."""
        try:
            r = await self._call_once(method, path, auth, **kw)
        except httpx.TransportError as exc:
            raise Unavailable(f"{method} {path}: {exc.__class__.__name__}") from exc
        if r.status_code == 204 or not r.content:
            return r.status_code, None
        return r.status_code, r.json()

    async def call_bytes(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> bytes:
        """The raw body of ``method path`` (downloads); errors as :meth:`call`."""
        try:
            r = await self._call_once(method, path, auth, **kw)
        except httpx.TransportError as exc:
            raise Unavailable(f"{method} {path}: {exc.__class__.__name__}") from exc
        return r.content

    async def _call_once(self, method: str, path: str, auth: bool, **kw: Any) -> httpx.Response:
        headers: dict[str, str] = {}
        token = ""
        if auth:
            assert self.token is not None, "no token source"
            token = self.token()
            headers["Authorization"] = f"Bearer {token}"
        r = await self._send(method, path, headers, **kw)
        if r.status_code == 401 and auth and self.refresh is not None:
            await self.refresh(token)  # raises Unauthorized when the session is over
            headers["Authorization"] = f"Bearer {self.token()}"  # type: ignore[misc]
            r = await self._send(method, path, headers, **kw)
        raise_for_problem(r)
        return r

    # -- auth ------------------------------------------------------------------------
    async def register(self, username: str, password: str, display_name: str | None = None) -> User:
        body: dict[str, Any] = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        out = await self.call("POST", "/v1/auth/register", auth=False, json=body)
        return User.model_validate(out["user"])

    async def login(self, username: str, password: str) -> Tokens:
        out = await self.call("POST", "/v1/auth/login", auth=False, json={"username": username, "password": password})
        return Tokens.model_validate(out)

    async def refresh_tokens(self, refresh_token: str) -> Tokens:
        try:
            out = await self.call("POST", "/v1/auth/refresh", auth=False, json={"refresh_token": refresh_token})
        except Unauthorized:
            raise
        except ChatError as err:
            if err.status == 422:  # a malformed refresh token can never work
                raise Unauthorized(err.message, status=err.status) from err
            raise
        return Tokens.model_validate(out)

    async def logout(self, refresh_token: str) -> None:
        await self.call("POST", "/v1/auth/logout", auth=False, json={"refresh_token": refresh_token})
