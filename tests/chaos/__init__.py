"""The chaos suite: continuous order load from retrying storefront clients against the
running local stack while each program is killed (SIGKILL) and paused (SIGSTOP/SIGCONT),
then black-box checks of what the clients were told against PostgreSQL, ``orders.shipped``
and the reconciler (docs/operations/chaos.md).

``python -m tests.chaos --long`` (``make chaos``) is the long form; ``test_chaos.py`` runs
the short form under pytest.
"""
