"""The supervisor programs of the pipeline: ORDERSTREAM_PIPELINE_NICE."""

from __future__ import annotations

from orderstream.stack.config import StackConfig
from orderstream.stack.pipeline import programs


def commands(environ: dict[str, str]) -> dict[str, list[str]]:
    cfg = StackConfig.from_env({"ORDERSTREAM_WORKERS": "2", **environ})
    return {p.name: list(p.command) for p in programs(cfg, {})}


def test_the_pipeline_runs_at_the_niceness_asked_and_the_ingress_does_not() -> None:
    found = commands({"ORDERSTREAM_PIPELINE_NICE": "7"})
    assert set(found) == {"ingress", "worker-0", "worker-1", "sink", "relay"}
    for name in ("worker-0", "worker-1", "sink", "relay"):
        assert found[name][:3] == ["nice", "-n", "7"], name
        assert found[name][3].endswith("orderstream")
    assert "nice" not in found["ingress"]


def test_no_niceness_by_default_and_out_of_range_values_are_clamped() -> None:
    assert all("nice" not in command for command in commands({}).values())
    assert commands({"ORDERSTREAM_PIPELINE_NICE": "40"})["sink"][:3] == ["nice", "-n", "19"]
