"""How a request waits for its worker's answer: within its timeout, and never cancelling the answer."""

from __future__ import annotations

import asyncio

from cprsdk.node.dispatch import answered_within


def test_an_answer_in_time_a_late_one_and_a_caller_that_gives_up() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        loop.call_later(0.01, answer.set_result, (200, b"{}"))
        assert await answered_within(answer, 5.0) and answer.result() == (200, b"{}")

        late: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        started = loop.time()
        assert not await answered_within(late, 0.05)
        assert 0.04 <= loop.time() - started < 2 and not late.done()
        late.set_result((200, b"late"))  # the worker's answer may still come: nothing was cancelled

        pending: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        waiting = asyncio.ensure_future(answered_within(pending, 5.0))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the client went away
        await asyncio.gather(waiting, return_exceptions=True)
        assert waiting.cancelled() and not pending.cancelled() and not pending.done()
        pending.set_result((200, b"{}"))

    asyncio.run(scenario())
