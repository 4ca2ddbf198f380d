"""HTML responses of the console: Jinja2 templates (autoescaped), the headers every page
carries, its cookies, and small bounded form bodies."""

from __future__ import annotations

import asyncio
import functools
import logging
import urllib.parse
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from jinja2 import Environment

log = logging.getLogger("opscm.console")

PREFIX = "/console"
SESSION_COOKIE = "opscm_console"
SIGN_IN_COOKIE = "opscm_console_sign_in"
MAX_FORM_BYTES = 8192

# No script at all, styles only inline, nothing fetched from elsewhere, never framed.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def _relative(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    delta = moment - now
    amount = abs(delta)
    if amount >= timedelta(days=2):
        text = f"{amount.days} days"
    elif amount >= timedelta(hours=2):
        text = f"{amount // timedelta(hours=1)} hours"
    else:
        text = f"{max(1, amount // timedelta(minutes=1))} min"
    return f"in {text}" if delta >= timedelta(0) else f"{text} ago"


@functools.cache
def _templates() -> Environment:
    """Made at the first page: Jinja2's import is ~4% of a server's start, and most never serve one."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    environment = Environment(
        loader=PackageLoader("opscm", "templates/console"),
        autoescape=True,  # every value escaped, whatever the template's name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["relative"] = _relative
    environment.globals["prefix"] = PREFIX
    return environment


def page(template: str, context: dict, status: int = 200) -> HTMLResponse:
    return secured(HTMLResponse(_templates().get_template(template).render(**context), status_code=status))


def redirect(path: str) -> RedirectResponse:
    return secured(RedirectResponse(PREFIX + path, status_code=303))


def secured(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int, path: str = PREFIX) -> None:
    """HttpOnly, SameSite=Strict, and Secure whenever the page came over HTTPS."""
    response.set_cookie(
        name, value, max_age=max_age, path=path, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def clear_cookie(request: Request, response: Response, name: str, path: str = PREFIX) -> None:
    set_cookie(request, response, name, "", 0, path)


class SlowForm(Exception):
    """A form's body did not arrive within its deadline (answer it with :func:`slow_form`)."""


def slow_form() -> Response:
    """408, and the connection closed: what is left of the body must not be read as a request."""
    response = page("error.html", {"message": "The form took too long to arrive; send it again."}, 408)
    response.headers["Connection"] = "close"
    return response


async def read_form(request: Request, timeout: float) -> dict[str, str] | None:
    """An urlencoded form of at most MAX_FORM_BYTES (None if larger, or if its client left); the
    first of repeated fields. SlowForm if it takes more than ``timeout`` seconds (the API's body
    deadline) to arrive."""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM_BYTES:
                    return None
    except TimeoutError:
        log.info("a console form from %s took more than %gs", request.client.host if request.client else "-", timeout)
        raise SlowForm() from None
    except ClientDisconnect:  # gone mid-body: nobody to answer (and no traceback in the log)
        return None
    try:
        fields = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    except ValueError:  # more fields than any console form has
        return None
    form: dict[str, str] = {}
    for name, value in fields:
        form.setdefault(name, value)
    return form
