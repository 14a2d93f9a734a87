"""One root exception for the stream workers."""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every error raised by the stream workers' own code."""


class UnsupportedFaustVersion(StreamsError):
    """The installed faust-streaming is not the version ``streams.faustinternals`` was
    written against, so a worker refuses to start on it."""

    def __init__(self, installed: str | None, supported: str) -> None:
        found = "is not installed" if installed is None else f"{installed} is installed"
        super().__init__(
            f"faust-streaming {found}, but the workers support only faust-streaming "
            f"=={supported}: streams/faustinternals.py relies on that version's internals "
            f"(install orderstream's pinned dependencies, or port the module and its "
            f"contract tests first)"
        )
        self.installed = installed
        self.supported = supported
