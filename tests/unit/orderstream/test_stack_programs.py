"""The supervisor programs of the pipeline: ORDERSTREAM_PIPELINE_NICE."""

from __future__ import annotations

from pathlib import Path

from orderstream.stack import envfile
from orderstream.stack.config import StackConfig
from orderstream.stack.pipeline import programs


def commands(environ: dict[str, str], local: Path) -> dict[str, list[str]]:
    """The programs' commands for a stack in ``local`` (no stack.env of a running stack)."""
    cfg = StackConfig.from_env(
        {"ORDERSTREAM_WORKERS": "2", "ORDERSTREAM_STACK_DIR": str(local), **environ}
    )
    return {p.name: list(p.command) for p in programs(cfg, {})}


def test_the_pipeline_runs_at_the_niceness_asked_and_the_ingress_does_not(tmp_path: Path) -> None:
    found = commands({"ORDERSTREAM_PIPELINE_NICE": "7"}, tmp_path)
    assert set(found) == {"ingress", "worker-0", "worker-1", "sink", "relay"}
    for name in ("worker-0", "worker-1", "sink", "relay"):
        assert found[name][:3] == ["nice", "-n", "7"], name
        assert found[name][3].endswith("orderstream")
    assert "nice" not in found["ingress"]


def test_no_niceness_by_default_and_out_of_range_values_are_clamped(tmp_path: Path) -> None:
    assert all("nice" not in command for command in commands({}, tmp_path).values())
    clamped = commands({"ORDERSTREAM_PIPELINE_NICE": "40"}, tmp_path)["sink"]
    assert clamped[:3] == ["nice", "-n", "19"]


def test_the_niceness_recorded_by_make_up_is_kept_by_the_next_one(tmp_path: Path) -> None:
    envfile.write(tmp_path / "stack.env", {"ORDERSTREAM_PIPELINE_NICE": "5"})
    environ = {"ORDERSTREAM_STACK_DIR": str(tmp_path)}
    assert StackConfig.from_env(environ).pipeline_nice == 5
    assert StackConfig.from_env({**environ, "ORDERSTREAM_PIPELINE_NICE": "0"}).pipeline_nice == 0


def sections(workers: int, local: Path) -> dict[str, str]:
    """The supervisord config's program sections for a stack of ``workers`` workers, with
    the values `make up` writes to stack.env."""
    from orderstream.core.settings import Settings
    from orderstream.stack.runner import stack_values
    from orderstream.stack.supervisor import render

    cfg = StackConfig.from_env(
        {"ORDERSTREAM_WORKERS": str(workers), "ORDERSTREAM_STACK_DIR": str(local)}
    )
    environ = {"STOREFRONT_KEY": "s", "ADMIN_KEY": "a"}
    values = stack_values(cfg, Settings(), environ, None)
    text = render(cfg, programs(cfg, values))
    found: dict[str, str] = {}
    for block in text.split("\n[")[1:]:
        name, _, body = block.partition("]\n")
        if name.startswith("program:"):
            found[name.removeprefix("program:")] = body
    return found


def test_another_worker_count_changes_only_the_workers_added_or_removed(tmp_path: Path) -> None:
    two, three = sections(2, tmp_path), sections(3, tmp_path)

    assert set(three) - set(two) == {"worker-2"}
    # supervisord's update restarts a program whose section changed: none of these
    assert {name: three[name] for name in two} == two
