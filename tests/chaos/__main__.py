"""``python -m tests.chaos [--long] [--rate N] [--seed N]``: one chaos run against the local
stack (``make up`` first); prints the summary table, exits 1 on any violation."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace

from tests.chaos.harness import long_config, programs_running, run, short_config, with_rate
from tests.chaos.stackctl import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the long form (minutes of load)")
    parser.add_argument("--rate", type=float, help="orders offered per second")
    parser.add_argument("--seed", type=int, help="seed of the order mix")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    programs = programs_running(LocalStack())
    config = long_config(programs) if args.long else short_config(programs)
    config = with_rate(replace(config, seed=args.seed), args.rate)
    report = run(config, say=lambda line: print(line, flush=True))
    print(report.table(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
