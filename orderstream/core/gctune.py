"""Garbage-collector settings for the long-running processes (ingress, workers, sink, relay).

CPython runs a young-generation collection every 700 net allocations and a full one every
100 of those; a busy process allocates millions of short-lived objects (requests,
messages, events), so collections run hundreds of times a second and every full one walks
every object the process holds: the app, Faust's tables and caches, the modules. None of
those are garbage. ``tune()`` moves everything that exists once the process is set up into
the permanent generation (``gc.freeze``, never scanned) and collects the young generation
every 50,000 allocations instead of 700. Reference counting still frees almost everything
at once; only cycles wait longer.

Fewer and cheaper collections save CPU per request, and full collections, each a pause for
every request in flight, become rare (the figures: docs/decisions/0011-gc-tuning.md).

``ORDERSTREAM_GC=python`` leaves CPython's defaults (for A/B runs); ``a,b,c`` sets other
thresholds.
"""

from __future__ import annotations

import gc
import os

THRESHOLDS = (50_000, 50, 100)


def thresholds(setting: str | None) -> tuple[int, int, int] | None:
    """The thresholds ``ORDERSTREAM_GC`` asks for; None for CPython's own."""
    if not setting:
        return THRESHOLDS
    if setting == "python":
        return None
    first, second, third = (int(part) for part in setting.split(","))
    return first, second, third


def tune() -> None:
    """Freeze what exists now and set the thresholds (call once set up, per process)."""
    wanted = thresholds(os.environ.get("ORDERSTREAM_GC"))
    if wanted is None:
        return
    gc.collect()  # free what set-up left behind before freezing the rest
    gc.freeze()
    gc.set_threshold(*wanted)
