"""The work queue's scheduling: delayed re-adds replace each other per key, and forget cancels them."""

from __future__ import annotations

import asyncio

from modeldeploy.workqueue import WorkQueue


def test_a_newer_requeue_of_a_key_replaces_the_older_and_forget_cancels_a_key():
    async def scenario() -> list[str]:
        queue = WorkQueue()
        ran: list[str] = []

        async def work(tag: str) -> None:
            ran.append(tag)

        queue.add_after("iris", 0.05, lambda: work("older"))
        queue.add_after("iris", 0.05, lambda: work("newer"))
        queue.add_after("wine", 0.05, lambda: work("deleted"))
        queue.add_debounced("wine", 0.05, lambda: work("deleted"))
        queue.forget("wine")
        await asyncio.sleep(0.3)
        return ran

    assert asyncio.run(scenario()) == ["newer"]


def test_a_run_now_goes_at_once_and_replaces_the_debounced_run_waiting_for_its_key():
    async def scenario() -> list[tuple[str, bool]]:
        queue = WorkQueue()
        ran: list[tuple[str, bool]] = []
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def work(tag: str) -> None:
            ran.append((tag, loop.time() - start < 0.2))

        queue.add_debounced("iris", 0.3, lambda: work("debounced iris"))
        queue.add_debounced("wine", 0.3, lambda: work("debounced wine"))
        queue.add_now("iris", lambda: work("now iris"))
        await asyncio.sleep(0.5)
        return ran

    # (tag, ran within 0.2 s): iris's debounced run is dropped, wine's is left alone
    assert asyncio.run(scenario()) == [("now iris", True), ("debounced wine", False)]


def test_shut_down_cancels_what_is_scheduled_and_running():
    async def scenario() -> list[str]:
        queue = WorkQueue()
        seen: list[str] = []

        async def work() -> None:
            seen.append("fired")

        async def background() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        queue.add_after("iris", 0.05, work)
        queue.spawn(background())
        await asyncio.sleep(0)
        queue.shut_down()
        await asyncio.sleep(0.2)
        return seen

    assert asyncio.run(scenario()) == ["cancelled"]


def test_a_pass_waiting_on_a_slow_check_hands_its_place_to_other_keys():
    async def scenario() -> list[str]:
        queue = WorkQueue(limit=1)
        order: list[str] = []
        check_may_end = asyncio.Event()

        async def slow_check() -> None:
            order.append("slow: check starts")
            async with queue.place_handed_back():
                await check_may_end.wait()
            order.append("slow: writes status")

        async def quick() -> None:
            order.append("quick: runs")
            check_may_end.set()

        slow = asyncio.create_task(queue.run("tenant-a", slow_check))
        await asyncio.sleep(0.01)
        await asyncio.wait_for(queue.run("tenant-b", quick), 2)
        await asyncio.wait_for(slow, 2)
        assert not queue.waiting()
        return order

    assert asyncio.run(scenario()) == ["slow: check starts", "quick: runs", "slow: writes status"]


def test_a_place_handed_back_is_taken_again_before_the_pass_goes_on():
    async def scenario() -> tuple[bool, bool]:
        queue = WorkQueue(limit=1)
        holder_may_end = asyncio.Event()

        async def handing_back() -> None:
            async with queue.place_handed_back():
                await asyncio.sleep(0.01)  # meanwhile another key takes the only place

        async def holder() -> None:
            await holder_may_end.wait()

        first = asyncio.create_task(queue.run("a", handing_back))
        await asyncio.sleep(0)
        second = asyncio.create_task(queue.run("b", holder))
        await asyncio.sleep(0.05)
        blocked = not first.done()  # it waits for its place again
        holder_may_end.set()
        await asyncio.wait_for(asyncio.gather(first, second), 2)
        return blocked, queue.waiting()

    assert asyncio.run(scenario()) == (True, False)


def test_background_work_that_fails_is_logged_and_the_queue_goes_on(caplog):
    async def scenario() -> list[str]:
        queue = WorkQueue()
        ran: list[str] = []

        async def broken() -> None:
            raise ValueError("status would not validate")

        async def healthy() -> None:
            ran.append("healthy")

        queue.add_after("bad", 0.05, broken)
        queue.add_after("good", 0.1, healthy)
        await asyncio.sleep(0.3)
        return ran

    with caplog.at_level("ERROR", logger="modeldeploy.workqueue.queue"):
        assert asyncio.run(scenario()) == ["healthy"]
    assert "status would not validate" in caplog.text
