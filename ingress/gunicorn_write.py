"""One ``send()`` per response instead of two under gunicorn's own HTTP workers.

gunicorn 27's ``Response.write`` sends the status line and headers, then the body, in two
``sendall`` calls: two syscalls (and under gevent two trips through its socket wrapper)
for every small JSON answer. ``install()`` (called from ``gunicorn_conf.post_worker_init``)
wraps ``write`` so that the first body chunk of a plain (not chunked, non-empty,
within Content-Length) response goes out in the same ``sendall`` as the headers; every
other case is left to gunicorn's own ``write``. The header bytes are built exactly as
gunicorn's ``send_headers`` builds them. Only gunicorn 27.x is patched (the method's
internals are not a public API); another version keeps gunicorn's behaviour and logs it.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def install() -> bool:
    import gunicorn
    from gunicorn.http import wsgi

    response = wsgi.Response
    original = response.write
    if getattr(original, "_coalesced", False):
        return True
    if not gunicorn.__version__.startswith("27.") or not hasattr(response, "default_headers"):
        logger.warning("gunicorn %s: headers and body are sent separately", gunicorn.__version__)
        return False

    def write(self: Any, arg: Any) -> None:
        if (
            not self.headers_sent
            and not self.chunked
            and type(arg) is bytes
            and arg
            and not self._omits_body
            and (self.response_length is None or len(arg) <= self.response_length)
        ):
            tosend = self.default_headers()
            tosend.extend(["%s: %s\r\n" % (k, v) for k, v in self.headers])  # noqa: UP031
            head = ("%s\r\n" % "".join(tosend)).encode("latin-1")  # noqa: UP031
            self.headers_sent = True
            self.sent += len(arg)
            self.sock.sendall(head + arg)
            return
        original(self, arg)

    write._coalesced = True  # type: ignore[attr-defined]
    write._original = original  # type: ignore[attr-defined]
    response.write = write
    return True
