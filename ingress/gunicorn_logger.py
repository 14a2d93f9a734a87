"""gunicorn's logger, building access-log lines only when an access log is asked for.

gunicorn counts any logging configuration (the ingress passes ``logconfig_dict`` for its
JSON lines, ``orderstream.core.logs``) as asking for access logs, so every request built its
log atoms although no handler wrote them. Here only ``accesslog`` (``--access-logfile``,
e.g. ``GUNICORN_CMD_ARGS=--access-logfile=-``) turns them on
(docs/decisions/0025-no-unasked-access-log.md).
"""

from __future__ import annotations

from gunicorn import glogging


class Logger(glogging.Logger):
    @property
    def access_log_enabled(self) -> bool:
        """Read by gunicorn's ASGI protocol before it times a request or logs it."""
        return bool(self.cfg.accesslog)
