"""The dashboard's HTML page and its static assets, read from the package (no build step, no CDN).

The page has no inline script or style, so it is served with a strict Content-Security-Policy: everything comes
from this server, and the data endpoints are fetched from the same origin.
"""

from __future__ import annotations

import functools
import html
import string
from collections.abc import Mapping
from importlib import resources

from starlette.responses import HTMLResponse, Response

from tokenbank._version import __version__

ASSETS: dict[str, str] = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
"""The files of ``static/`` the dashboard serves, with their media types; nothing else is served."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@functools.cache
def _read(folder: str, name: str) -> bytes:
    return resources.files("tokenbank.integrations.dashboard").joinpath(folder, name).read_bytes()


def render_page(base: str, *, title: str, settings: Mapping[str, int]) -> HTMLResponse:
    """The page for a dashboard served at ``base`` (its assets and data endpoints live under it); ``settings``
    become ``data-*`` attributes the script reads."""
    template = string.Template(_read("templates", "index.html").decode())
    attributes = " ".join(f'data-{name.replace("_", "-")}="{value}"' for name, value in sorted(settings.items()))
    text = template.substitute(
        base=html.escape(base), title=html.escape(title), version=html.escape(__version__), settings=attributes
    )
    return HTMLResponse(text, headers=_HEADERS)


def asset(name: str) -> Response:
    """One file of ``static/`` named in :data:`ASSETS` (the folder itself is never listed or walked)."""
    media_type = ASSETS[name]
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}
    return Response(_read("static", name), media_type=media_type, headers=headers)


__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "asset", "render_page"]
