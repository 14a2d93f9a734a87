"""Scenarios: a catalog (product id -> stock) and a stream of orders, all ids unique to the run."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

Lines = tuple[tuple[str, int], ...]
PRICE = "19.99"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    stock: dict[str, int]  # product id -> units available at the start
    orders: int  # how many orders the buyers try to place (the run may stop earlier on time)
    seed: int
    min_lines: int = 1
    max_lines: int = 1
    max_quantity: int = 1

    def order_lines(self) -> Iterator[Lines]:
        """An endless, reproducible stream of order lines over the catalog."""
        rng = random.Random(self.seed)
        products = list(self.stock)
        while True:
            count = rng.randint(self.min_lines, min(self.max_lines, len(products)))
            chosen = rng.sample(products, count) if count > 1 else [rng.choice(products)]
            yield tuple((pid, rng.randint(1, self.max_quantity)) for pid in chosen)

    @property
    def demand_units_estimate(self) -> float:
        mean_lines = (self.min_lines + min(self.max_lines, len(self.stock))) / 2
        return self.orders * mean_lines * (1 + self.max_quantity) / 2


def hot_product(run_id: str, scale: float = 1.0) -> Scenario:
    """One product, stock far below demand, many concurrent buyers of one unit each.

    15,000 orders by default: orderstream answers sold-out orders at the door, so 3,000
    would take it under a second, too short to measure."""
    orders = max(20, int(15_000 * scale))
    return Scenario(
        name="hot_product",
        description="one product, stock = 10% of demand, 1 unit per order",
        stock={f"b{run_id}-hot-0": max(1, orders // 10)},
        orders=orders,
        seed=1,
    )


def catalog(run_id: str, scale: float = 1.0, products: int = 10_000) -> Scenario:
    """10,000 products, uniform demand, 1-2 units per order; most orders can be served."""
    orders = max(20, int(4000 * scale))
    return Scenario(
        name="catalog",
        description=f"{products} products, uniform demand, 1 line of 1-2 units",
        stock={f"b{run_id}-cat-{i}": 5 for i in range(products)},
        orders=orders,
        seed=2,
        max_quantity=2,
    )


def multi_line(run_id: str, scale: float = 1.0, products: int = 100) -> Scenario:
    """Orders of 2-5 lines over 100 products; stock covers about half of the demand."""
    orders = max(20, int(2000 * scale))
    per_product = max(1, int(orders * 3.5 * 1.5 / products / 2))
    return Scenario(
        name="multi_line",
        description=f"{products} products, 2-5 lines of 1-2 units, stock ~ half of demand",
        stock={f"b{run_id}-ml-{i}": per_product for i in range(products)},
        orders=orders,
        seed=3,
        min_lines=2,
        max_lines=5,
        max_quantity=2,
    )


BUILDERS = {"hot_product": hot_product, "catalog": catalog, "multi_line": multi_line}


def build(name: str, run_id: str, scale: float = 1.0) -> Scenario:
    return BUILDERS[name](run_id, scale)
