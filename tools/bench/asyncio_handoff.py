#!/usr/bin/env python3
"""asyncio and uvloop figures for tulip-bench's lock_handoff and queue_handoff.

lock_handoff: two tasks pass an asyncio.Lock back and forth; each releases
it while the other waits in acquire() and then acquires it again, so every
acquire waits for the other's release (asyncio's Lock is fair: a waiter
queued before the release goes first). Hand-offs per second.

queue_handoff: a producer puts 1..N into an asyncio.Queue(maxsize=1), a
consumer gets them (checking the order). Items per second.

Median of 3 runs, each on a fresh loop; uvloop when it imports (Debian's
python3-uvloop: run with /usr/bin/python3). One JSON line. Pin it as
micro.sh pins asyncio_callsoon.py: taskset -c 1 python3 asyncio_handoff.py

    asyncio_handoff.py [--n N (default 200000)] [--loops asyncio,uvloop]
"""
import argparse
import asyncio
import gc
import json
import platform
import statistics
import time


async def _lock_handoff(n):
    lock = asyncio.Lock()
    state = {"handoffs": 0, "missed": 0}

    async def pass_on():
        while True:
            last = state["handoffs"] >= n
            lock.release()
            if last:
                return
            state["handoffs"] += 1
            await lock.acquire()

    async def first():
        await lock.acquire()
        await asyncio.sleep(0)  # the second task starts and waits
        await pass_on()

    async def second():
        await lock.acquire()
        await pass_on()

    await asyncio.gather(first(), second())
    assert state["handoffs"] == n and not lock.locked(), state
    return n


async def _queue_handoff(n):
    q = asyncio.Queue(maxsize=1)

    async def producer():
        for i in range(1, n + 1):
            await q.put(i)

    async def consumer():
        for i in range(1, n + 1):
            item = await q.get()
            assert item == i, (item, i)

    await asyncio.gather(producer(), consumer())
    return n


def rate(new_loop, coro_fn, n):
    loop = new_loop()
    try:
        gc.collect()
        t0 = time.perf_counter()
        done = loop.run_until_complete(coro_fn(n))
        dt = time.perf_counter() - t0
    finally:
        loop.close()
    assert done == n
    return n / dt


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--loops", default="asyncio,uvloop")
    args = ap.parse_args()
    out = {"bench": "asyncio_handoff", "python": platform.python_version(), "n": args.n}
    for name in args.loops.split(","):
        if name == "asyncio":
            factory = asyncio.new_event_loop
        else:
            try:
                import uvloop
                factory = uvloop.new_event_loop
                out["uvloop_version"] = uvloop.__version__
            except ImportError:
                out[f"{name}_lock_handoff_per_s"] = out[f"{name}_queue_handoff_per_s"] = None
                continue
        for bench, fn in (("lock_handoff", _lock_handoff), ("queue_handoff", _queue_handoff)):
            runs = [rate(factory, fn, args.n) for _ in range(3)]
            out[f"{name}_{bench}_per_s"] = round(statistics.median(runs))
            out[f"{name}_{bench}_runs"] = [round(x) for x in runs]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
