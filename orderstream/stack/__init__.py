"""The local stack: Kafka (KRaft), PostgreSQL and Redis under supervisord, plus the pipeline.

``orderstream stack up|down|status|env|ctl`` (see :mod:`orderstream.stack.cli`); ``make up``
calls it after ``deploy/bootstrap.sh`` has installed the system packages and the venv.
"""
