"""Stock decisions in Faust: reserve_stock (per product partition) and settle_orders
(per order partition). The decisions themselves are pure functions in ``decisions``,
``ledger`` and ``settlement``; Faust only moves bytes in and out."""
