"""How long the generator takes per size, what each size holds, and (optionally) storing it.

Run: .venv/bin/python benchmarks/generator_speed.py [--store] [SIZE ...]   (default: every size)
`--store` also times each service's `seed_world` into a fresh data dir (what `serve --size` does).
The goal: `large` (at least 1,000,000 leads + contacts) generated in well under a minute on 2 cores.
No latency: the generator and the stores make no network call.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import print_no_latency

from msi_sandbox.generator import SIZES, World, generate
from msi_sandbox.server import SERVICE_CLASSES, build_service


def store_world(world: World) -> str:
    """Seconds per service to store `world`, as one printable line."""
    timings = []
    with tempfile.TemporaryDirectory() as data_dir:
        for name in SERVICE_CLASSES:
            service = build_service(name, Path(data_dir))
            started = time.perf_counter()
            service.seed_world(world)
            timings.append(f"{name} {time.perf_counter() - started:.2f}s")
    return "  stored: " + ", ".join(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", default=list(SIZES), help=f"of {sorted(SIZES)}")
    parser.add_argument("--store", action="store_true", help="also time each service's seeding")
    args = parser.parse_args()
    print_no_latency("the generator and the stores make no network call")
    print(f"{'size':<8} {'records':>10} {'people':>10} {'seconds':>8}  counts")
    for size in args.sizes:
        started = time.perf_counter()
        world = generate(size, seed=0)
        seconds = time.perf_counter() - started
        counts = world.counts()
        people = counts["leads"] + counts["contacts"]
        print(f"{size:<8} {sum(counts.values()):>10,} {people:>10,} {seconds:>8.2f}  {counts}")
        if args.store:
            print(store_world(world))
        del world


if __name__ == "__main__":
    main()
