"""spawn: the asyncio side of tulip-bench's spawn benchmark (bench_spawn.c):
create_subprocess_exec + wait of 1000 /bin/true, 50 at a time, streams
inherited (asyncio's default). Median of 3 runs, one JSON line, with the
CPU time per child of this process (cpu_us_per_spawn) and of the children
(child_cpu_us_per_spawn), as tulip-bench spawn prints them."""
import asyncio
import json
import resource
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


def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


rates, cpus, child_cpus = [], [], []
for _ in range(3):
    s0, c0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    if asyncio.run(main()):
        sys.exit("spawn_asyncio: a child failed")
    rates.append(N / (time.perf_counter() - t0))
    cpus.append((cpu(resource.RUSAGE_SELF) - s0) * 1e6 / N)
    child_cpus.append((cpu(resource.RUSAGE_CHILDREN) - c0) * 1e6 / N)
print(json.dumps({"bench": "spawn_asyncio", "processes": N,
                  "concurrency": CONCURRENCY, "python": sys.version.split()[0],
                  "per_s": round(statistics.median(rates)),
                  "runs_per_s": [round(r) for r in rates],
                  "cpu_us_per_spawn": round(statistics.median(cpus)),
                  "child_cpu_us_per_spawn": round(statistics.median(child_cpus))}))
