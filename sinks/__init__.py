"""The PostgreSQL sink, its outbox relay and the schema migrations.

``orderstream sink`` projects the order events into PostgreSQL (one transaction per
batch, upstream offsets in the same transaction), ``orderstream relay`` publishes the
outbox, ``orderstream migrate`` brings the schema to the head revision.
"""
