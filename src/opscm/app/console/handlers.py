"""The console's pages and its sign-in / sign-out forms."""

from __future__ import annotations

import dataclasses
import hmac
import logging
import urllib.parse

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from opscm.domain.errors import NotFound
from opscm.service import console
from opscm.service.console import NodePage, NodeQuery, Viewer
from opscm.service.context import Dependencies
from opscm.service.ports import AccessKey

from ..credentials import KeyRing
from .access import key_with_secret, may_use_console
from .chart import hourly_chart
from .sessions import IDLE_TIMEOUT, SIGN_IN_FORM_TIMEOUT, Session, SessionCodec, expires_in
from .web import (
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SlowForm,
    clear_cookie,
    page,
    read_form,
    redirect,
    set_cookie,
    slow_form,
)

log = logging.getLogger("opscm.console")
PAGE_SIZES = (50, 100, 200)
MAX_QUERY_CHARS = 255  # a node name's longest
# The sign-in form's cookie goes back only to the form.
_SIGN_IN_PATH = PREFIX + "/sign-in"


@dataclasses.dataclass(frozen=True)
class SignedIn:
    key: AccessKey
    session: Session
    viewer: Viewer


class Console:
    def __init__(
        self, deps: Dependencies, keys: KeyRing, codec: SessionCodec, regions: tuple[str, ...], body_timeout: float
    ):
        self._deps = deps
        self._keys = keys
        self._codec = codec
        self._regions = regions
        self._body_timeout = body_timeout

    # -- signing in and out ------------------------------------------------------------------

    async def sign_in_form(self, request: Request) -> Response:
        if await self._signed_in(request) is not None:
            return redirect("")
        return self._sign_in_page(request)

    async def sign_in(self, request: Request) -> Response:
        try:
            form = await read_form(request, self._body_timeout)
        except SlowForm:
            return slow_form()
        if form is None or not self._codec.sign_in_token_matches(request.cookies.get(SIGN_IN_COOKIE), form.get("csrf", "")):
            return self._sign_in_page(request, "The sign-in form has expired. Please sign in again.", 403)
        key_id = form.get("access_key_id", "").strip()
        key = await run_in_threadpool(key_with_secret, self._keys, key_id, form.get("secret_access_key", ""))
        client = request.client.host if request.client else "-"
        if key is None:
            log.info("console sign-in refused from %s: unknown access key or wrong secret", client)
            return self._sign_in_page(request, "The access key ID or the secret access key is not valid.", 401)
        if not may_use_console(key):
            log.info("console sign-in refused from %s: key %s may not use Describe*", client, key.access_key_id)
            return self._sign_in_page(request, "This access key may not use the console: it needs opsworks-cm:Describe*.", 403)
        log.info("console sign-in of key %s (account %s) from %s", key.access_key_id, key.account_id, client)
        response = redirect("")
        self._keep_session(request, response, self._codec.start(key))
        clear_cookie(request, response, SIGN_IN_COOKIE, path=_SIGN_IN_PATH)
        return response

    async def sign_out(self, request: Request) -> Response:
        signed_in = await self._signed_in(request)
        try:
            form = await read_form(request, self._body_timeout)
        except SlowForm:
            return slow_form()
        if signed_in is not None and (form is None or not _same_token(form.get("csrf", ""), signed_in.session)):
            return page("error.html", {"message": "The form has expired; reload the page and sign out again."}, 403)
        response = redirect("/sign-in")
        clear_cookie(request, response, SESSION_COOKIE)
        return response

    # -- pages ---------------------------------------------------------------------------------

    async def servers(self, request: Request) -> Response:
        async def render(viewer: Viewer) -> tuple[str, dict]:
            summaries = await run_in_threadpool(console.servers, self._deps, viewer)
            hours = await run_in_threadpool(console.associations_per_hour, self._deps, viewer)
            return "servers.html", {"summaries": summaries, "chart": hourly_chart(hours)}

        return await self._page(request, render)

    async def server(self, request: Request) -> Response:
        params = request.query_params
        query = NodeQuery(
            contains=_text(params.get("q")),
            after=_text(params.get("after")),
            before=_text(params.get("before")),
            size=_page_size(params.get("size")),
        )
        region, name = request.path_params["region"], request.path_params["name"]

        async def render(viewer: Viewer) -> tuple[str, dict]:
            detail = await run_in_threadpool(console.server_detail, self._deps, viewer, region, name, query)
            pager = _pager(query, detail.nodes)
            return "server.html", {"detail": detail, "query": query, "pager": pager, "chart": hourly_chart(detail.hours)}

        return await self._page(request, render)

    async def certificates(self, request: Request) -> Response:
        async def render(viewer: Viewer) -> tuple[str, dict]:
            expiring = await run_in_threadpool(console.expiring_certificates, self._deps, viewer)
            return "certificates.html", {"expiring": expiring, "days": console.EXPIRY_HORIZON.days}

        return await self._page(request, render)

    async def search(self, request: Request) -> Response:
        text = _text(request.query_params.get("q"))

        async def render(viewer: Viewer) -> tuple[str, dict]:
            matches = await run_in_threadpool(console.find_nodes, self._deps, viewer, text) if text else []
            return "search.html", {"text": text or "", "matches": matches}

        return await self._page(request, render)

    # -----------------------------------------------------------------------------------------

    async def _page(self, request: Request, render) -> Response:
        signed_in = await self._signed_in(request)
        if signed_in is None:
            return redirect("/sign-in")
        try:
            template, context = await render(signed_in.viewer)
            response = page(template, {**self._common(signed_in), **context})
        except NotFound:
            # Another account's server, one the key may not touch, or none: all look alike.
            response = page("error.html", {**self._common(signed_in), "message": "There is no such server."}, 404)
        self._keep_session(request, response, signed_in.session)
        return response

    async def _signed_in(self, request: Request) -> SignedIn | None:
        """The session of a key that still exists, still has this secret and may still use the console."""
        session = self._codec.open(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        key = await run_in_threadpool(self._keys.find, session.key_id)
        if key is None or not self._codec.belongs_to(session, key) or not may_use_console(key):
            return None
        return SignedIn(key, self._codec.refreshed(session), Viewer(key.account_id, key.server_names, self._regions))

    def _keep_session(self, request: Request, response: Response, session: Session) -> None:
        max_age = expires_in(session, self._deps.clock.now())
        set_cookie(request, response, SESSION_COOKIE, self._codec.seal(session), max_age)

    def _sign_in_page(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        token, cookie = self._codec.sign_in_token()
        context = {"error": error, "csrf": token, "idle_minutes": int(IDLE_TIMEOUT.total_seconds() // 60)}
        response = page("sign_in.html", context, status)
        max_age = int(SIGN_IN_FORM_TIMEOUT.total_seconds())
        set_cookie(request, response, SIGN_IN_COOKIE, cookie, max_age, path=_SIGN_IN_PATH)
        return response

    def _common(self, signed_in: SignedIn) -> dict:
        return {
            "key": signed_in.key,
            "csrf": signed_in.session.csrf_token,
            "now": self._deps.clock.now(),
            "horizon": console.EXPIRY_HORIZON,  # certificates expiring within it are highlighted
            "idle_minutes": int(IDLE_TIMEOUT.total_seconds() // 60),
        }


def _same_token(sent: str, session: Session) -> bool:
    return hmac.compare_digest(sent.encode(), session.csrf_token.encode())


@dataclasses.dataclass(frozen=True)
class Pager:
    previous: str | None  # the query string of the page before, None on the first
    next: str | None


def _pager(query: NodeQuery, page: NodePage) -> Pager:
    kept = {"q": query.contains} if query.contains else {}
    if query.size != PAGE_SIZES[0]:
        kept["size"] = str(query.size)

    def link(**edge: str) -> str:
        return "?" + urllib.parse.urlencode({**kept, **edge})

    return Pager(
        link(before=page.rows[0].claim.name) if page.has_previous and page.rows else None,
        link(after=page.rows[-1].claim.name) if page.has_next and page.rows else None,
    )


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:MAX_QUERY_CHARS] or None


def _page_size(value: str | None) -> int:
    return int(value) if value in {str(size) for size in PAGE_SIZES} else PAGE_SIZES[0]
