"""A baseline on the real PostgreSQL and Redis, through a tiny bounded scenario.

Checks that the summary is well-formed and that oversold and lost come from the baseline's
own database (rows are tampered with after the run and the figures follow). No timings.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bench.figures import TERMINAL
from bench.loadgen import LoadConfig
from bench.runner import evaluate, load_scenario
from bench.scenarios import build
from bench.summary import build_summary, validate_summary
from bench.systems import Tuning, baseline

TINY_LOAD = LoadConfig(concurrency=8, duration_s=30.0, drain_s=30.0, wait_s=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("name", ["baseline_lock", "baseline_lua"])
def test_tiny_scenario_figures_come_from_the_baselines_database(
    stack: Any, tmp_path: Path, name: str
) -> None:
    settings = stack.settings
    scenario = build("multi_line", f"t{uuid.uuid4().hex[:6]}", scale=0.01)
    scenario = replace(scenario, orders=30)
    tuning = Tuning(workers=1, threads=4, lua_worker_threads=2)
    with baseline(name, settings, tuning, tmp_path / "logs", port=free_port()) as system:
        outcomes, cpu = load_scenario(system, scenario, TINY_LOAD)
        result = evaluate(system, scenario, outcomes, cpu)

        summary = build_summary({scenario.name: {name: result.figures}})
        validate_summary(summary)
        figures = summary["scenarios"]["multi_line"][name]
        assert figures["orders"] == len(outcomes) > 0
        assert figures["oversold"] == 0
        assert figures["accepted"] + figures["failed"] == figures["orders"]
        assert "cpu_s_ingress" in figures

        answered = [o for o in outcomes if o.answered]
        assert answered, "no order reached a final answer"
        assert all(o.final_status in TERMINAL for o in answered)

        # Tamper with the baseline's own rows: one more shipped order beyond the stock of a
        # product, and one answered order put back to pending and unseen by the client.
        product = next(iter(scenario.stock))
        stuck = next(o for o in answered if o.final_status == "shipped")
        extra = f"tamper-{uuid.uuid4().hex[:8]}"
        engine = sa.create_engine(system.database_url)
        with engine.begin() as conn:
            sold = conn.execute(
                sa.text(
                    "SELECT COALESCE(SUM(i.quantity), 0) FROM order_items i "
                    "JOIN orders o USING (order_id) "
                    "WHERE o.status = 'shipped' AND i.product_id = :pid"
                ),
                {"pid": product},
            ).scalar_one()
            over = scenario.stock[product] - int(sold) + 3
            conn.execute(
                sa.text(
                    "INSERT INTO orders (order_id, customer_id, status, total_amount) "
                    "VALUES (:oid, 'tamper', 'shipped', 0)"
                ),
                {"oid": extra},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) "
                    "VALUES (:oid, 1, :pid, :q, 0)"
                ),
                {"oid": extra, "pid": product, "q": over},
            )
            conn.execute(
                sa.text("UPDATE orders SET status = 'accepted' WHERE order_id = :oid"),
                {"oid": stuck.order_id},
            )
        engine.dispose()
        stuck.final_status, stuck.t_final = None, None

        tampered = evaluate(system, scenario, outcomes, cpu).figures
        assert tampered["oversold"] == 3
        assert tampered["lost"] == figures["lost"] + 1


def test_open_loop_tiny_scenario_on_a_baseline(stack: Any, tmp_path: Path) -> None:
    """The open loop on a real system: figures carry the mode and the offered rate."""
    settings = stack.settings
    scenario = replace(build("hot_product", f"t{uuid.uuid4().hex[:6]}", scale=0.01), orders=30)
    load = LoadConfig(concurrency=8, duration_s=30.0, drain_s=30.0, wait_s=5.0, rate=40.0)
    tuning = Tuning(workers=1, threads=4, lua_worker_threads=2)
    with baseline("baseline_lua", settings, tuning, tmp_path / "logs", port=free_port()) as system:
        outcomes, cpu = load_scenario(system, scenario, load)
        result = evaluate(system, scenario, outcomes, cpu, load=load)

    summary = build_summary({scenario.name: {"baseline_lua": result.figures}})
    validate_summary(summary)
    figures = summary["scenarios"]["hot_product"]["baseline_lua"]
    assert figures["mode"] == "open" and figures["offered_per_s"] == 40.0
    assert figures["orders"] == 30 and figures["not_started"] == 0
    assert figures["accepted"] + figures["failed"] == figures["orders"]
    assert figures["oversold"] == 0
    assert all(o.t_scheduled is not None for o in outcomes)
    assert any(o.answered for o in outcomes), "no order reached a final answer"
