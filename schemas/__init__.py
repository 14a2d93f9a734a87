"""The wire contract of orderstream: topic names, partition counts and typed records.

Plain JSON on the wire (no Faust metadata block), so any Kafka client can read and
write it. Money is a decimal string, timestamps are ISO-8601 UTC, every record has a
``schema_version`` and every event an ``event_id``. No logic lives here.
"""
