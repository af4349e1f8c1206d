"""Adaptive batching: a lone request waits for nothing; requests that arrive while a batch runs go together."""

from __future__ import annotations

import asyncio
import time

import pytest

from serving.batching import AdaptiveBatcher


def test_a_lone_request_runs_at_once_and_a_queue_becomes_one_batch():
    calls: list[list[int]] = []

    async def run(items):
        calls.append(list(items))
        await asyncio.sleep(0.05)  # a slow model: what arrives meanwhile queues
        return [i * 10 for i in items]

    async def scenario():
        b = AdaptiveBatcher(run, max_batch_size=8)
        start = time.perf_counter()
        first = asyncio.ensure_future(b.submit(0))
        await asyncio.sleep(0)  # the first batch is now running
        waited = time.perf_counter() - start
        rest = await asyncio.gather(*(b.submit(i) for i in range(1, 12)))
        return [await first, *rest], waited

    results, waited = asyncio.run(scenario())
    assert results == [i * 10 for i in range(12)]
    assert waited < 0.01 and calls[0] == [0]
    assert calls[1:] == [list(range(1, 9)), list(range(9, 12))]  # gathered, in order, at most max_batch_size


def test_a_failing_batch_fails_each_of_its_callers_and_the_next_batch_still_runs():
    async def run(items):
        if 13 in items:
            raise RuntimeError("model broke")
        return items

    async def scenario():
        b = AdaptiveBatcher(run, max_batch_size=4)
        bad = await asyncio.gather(b.submit(13), b.submit(1), return_exceptions=True)
        good = await b.submit(2)
        return bad, good

    bad, good = asyncio.run(scenario())
    assert all(isinstance(e, RuntimeError) for e in bad) and good == 2


@pytest.mark.parametrize("in_flight", [1, 3])
def test_at_most_max_in_flight_batches_run_at_once(in_flight):
    running, peak = 0, 0

    async def run(items):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return items

    async def scenario():
        b = AdaptiveBatcher(run, max_batch_size=2, max_in_flight=in_flight)
        return await asyncio.gather(*(b.submit(i) for i in range(20)))

    assert asyncio.run(scenario()) == list(range(20))
    assert peak == in_flight


def test_lone_now_runs_a_lone_request_in_the_callers_task_and_what_queues_meanwhile_goes_next():
    tasks, calls = [], []

    async def run(items):
        tasks.append(asyncio.current_task())
        calls.append(list(items))
        await asyncio.sleep(0.01)
        if 13 in items:
            raise RuntimeError("model broke")
        return items

    async def scenario():
        b = AdaptiveBatcher(run, max_batch_size=4, max_in_flight=1, lone_now=True)
        assert await b.submit(1) == 1
        with pytest.raises(RuntimeError, match="model broke"):
            await b.submit(13)
        first = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0)  # 2 is running alone; 3 and 4 queue behind it
        rest = await asyncio.gather(b.submit(3), b.submit(4))
        return asyncio.current_task(), b, [await first, *rest]

    caller, b, results = asyncio.run(scenario())
    assert tasks[:2] == [caller, caller] and calls == [[1], [13], [2], [3, 4]]
    assert results == [2, 3, 4] and b._in_flight == 0 and not b._queue
