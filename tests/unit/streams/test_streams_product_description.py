"""A product's description follows its name: the upsert sets it, the stock table keeps it,
the read model shows it."""

from __future__ import annotations

from typing import Any

import msgspec
from streams_fakes import DictState, restock, upsert

from orderstream.core.readmodel import Keys, decode_product
from streams import ledger
from streams.readmodel import ReadModelWriter
from streams.records import ProductState, decode_stock, encode, product_key


def test_an_upsert_sets_the_description_a_restock_keeps_it_the_next_upsert_replaces_it() -> None:
    state = DictState()
    described = msgspec.structs.replace(upsert("SKU-1", 5), description="350 ml, stoneware")
    ledger.on_command(state, described, offset=0)
    ledger.on_command(state, restock("SKU-1", 3, "r1"), offset=1)
    stored = state.get(product_key("SKU-1"))
    assert stored is not None
    product = decode_stock(encode(stored))  # as the changelog holds it
    assert isinstance(product, ProductState)
    assert (product.description, product.available) == ("350 ml, stoneware", 8)
    ledger.on_command(state, upsert("SKU-1", None, command_id="u2"), offset=2)
    replaced = state.get(product_key("SKU-1"))
    assert isinstance(replaced, ProductState) and replaced.description is None


def test_the_read_model_shows_the_description() -> None:
    state = DictState()
    described = msgspec.structs.replace(upsert("SKU-1", 5), description="350 ml")
    product = ledger.on_command(state, described, offset=0)
    assert product is not None
    writer = ReadModelWriter(None, Keys())
    writer.enqueue_product(product)
    assert shown(writer)["description"] == "350 ml"
    writer.enqueue_product(msgspec.structs.replace(product, description=None))
    assert shown(writer)["description"] is None


def shown(writer: ReadModelWriter) -> dict[str, Any]:
    """The product as the API shows it from the hash the writer would set."""
    _, fields = writer.products["SKU-1"]
    found = decode_product("SKU-1", dict(fields.items()))
    assert found is not None
    return found
