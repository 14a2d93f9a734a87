"""orderstream: composition root, settings, CLI and the local stack."""

from importlib.metadata import PackageNotFoundError, version

try:
    # the one place the version is written is setup.cfg; the installed metadata carries it
    __version__ = version("orderstream")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
