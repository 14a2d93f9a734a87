"""The storefront page: ``GET /shop`` (HTML, CSS and one ES module, no build step).

A customer registers or signs in (``/v1/auth/*``) and the page calls the public HTTP API
from the browser with that customer's access token, kept in the tab's sessionStorage and
refreshed before it expires: live availability, buying, "my orders" with live statuses,
and cancelling. It never holds the storefront key, which stays server to server.
"""

from __future__ import annotations

from importlib import resources

import falcon
import falcon.asgi

from ingress.auth import PUBLIC

FILES = {
    "index.html": "text/html; charset=utf-8",
    "shop.js": "text/javascript; charset=utf-8",
    "shop.css": "text/css; charset=utf-8",
}
# the page loads only its own files and talks only to this origin
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class ShopResource:
    auth = {"GET": PUBLIC}

    def __init__(self) -> None:
        here = resources.files(__name__)
        self._files = {name: (here / name).read_bytes() for name in FILES}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.on_get_file(req, resp, "index.html")

    async def on_get_file(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str
    ) -> None:
        if name not in self._files:
            raise falcon.HTTPNotFound()
        resp.content_type = FILES[name]
        resp.data = self._files[name]
        resp.set_header("Content-Security-Policy", POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.cache_control = ["no-cache"]
