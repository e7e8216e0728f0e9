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
