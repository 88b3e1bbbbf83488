"""How long the generator takes per size, and what each size holds.

Run: .venv/bin/python benchmarks/generator_speed.py [SIZE ...]   (default: every size)
The goal: `large` (at least 1,000,000 leads + contacts) in well under a minute on 2 cores.
"""

from __future__ import annotations

import sys
import time

from msi_sandbox.generator import SIZES, generate


def main(sizes: list[str]) -> None:
    print(f"{'size':<8} {'records':>10} {'people':>10} {'seconds':>8}  counts")
    for size in sizes:
        started = time.perf_counter()
        world = generate(size, seed=0)
        seconds = time.perf_counter() - started
        counts = world.counts()
        people = counts["leads"] + counts["contacts"]
        print(f"{size:<8} {sum(counts.values()):>10,} {people:>10,} {seconds:>8.2f}  {counts}")
        del world


if __name__ == "__main__":
    main(sys.argv[1:] or list(SIZES))
