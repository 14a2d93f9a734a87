"""Settings travel to child processes through the environment unchanged."""

from __future__ import annotations

import pytest

from orderstream.core.settings import Settings


def test_to_env_round_trips_through_from_env() -> None:
    settings = Settings(
        kafka_bootstrap="k:1",
        database_url="postgresql+psycopg://u:p@h:2/d",
        storefront_key="s",
        partitions=3,
        topic_prefix="t1.",
        app_id="app-x",
        hold_time_s=2.5,
        sink_batch_size=7,
        sold_out_gate=False,
    )
    assert Settings.from_env(settings.to_env()) == settings


def test_stack_variables_keep_their_plain_names() -> None:
    env = Settings(kafka_bootstrap="k:1", admin_key="a").to_env()
    assert env["KAFKA_BOOTSTRAP"] == "k:1" and env["ADMIN_KEY"] == "a"
    assert env["ORDERSTREAM_PARTITIONS"] == "8"


@pytest.mark.parametrize(
    ("raw", "value"), [("false", False), ("0", False), ("Off", False), ("true", True), ("1", True)]
)
def test_boolean_settings_read_words_and_digits(raw: str, value: bool) -> None:
    assert Settings.from_env({"ORDERSTREAM_SOLD_OUT_GATE": raw}).sold_out_gate is value


def test_a_boolean_setting_that_is_not_a_boolean_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a boolean"):
        Settings.from_env({"ORDERSTREAM_SOLD_OUT_GATE": "maybe"})
