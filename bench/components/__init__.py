"""Benchmarks of one component each, against the running stack (never run by tests):
``python -m bench.components.ingress``, ``.streams`` (with ``.floor``, the cheapest Faust
worker), ``.sinks``."""
