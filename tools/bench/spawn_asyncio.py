"""spawn: the asyncio side of tulip-bench's spawn benchmark (bench_spawn.c):
create_subprocess_exec + wait of 1000 /bin/true, 50 at a time, streams
inherited (asyncio's default). Median of 3 runs, one JSON line."""
import asyncio
import json
import statistics
import sys
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
CONCURRENCY = 50


async def main():
    left = iter(range(N))
    failed = 0

    async def worker():
        nonlocal failed
        for _ in left:
            p = await asyncio.create_subprocess_exec("/bin/true")
            if await p.wait() != 0:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return failed


rates = []
for _ in range(3):
    t0 = time.perf_counter()
    if asyncio.run(main()):
        sys.exit("spawn_asyncio: a child failed")
    rates.append(N / (time.perf_counter() - t0))
print(json.dumps({"bench": "spawn_asyncio", "processes": N,
                  "concurrency": CONCURRENCY, "python": sys.version.split()[0],
                  "per_s": round(statistics.median(rates))}))
