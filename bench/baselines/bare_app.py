"""A bare Falcon endpoint: the ceiling for any Falcon + gunicorn service on this machine."""

from __future__ import annotations

import falcon


class PingResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"ok": True}


def get_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/ping", PingResource())
    app.add_route("/healthz", PingResource())
    return app
