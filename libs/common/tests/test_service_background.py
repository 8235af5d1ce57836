"""The skeleton's background tasks: run for the life of the service, cancelled and awaited at
shutdown; one that failed is logged, not raised into the shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from chat_common.service import ServiceContext
from chat_common.settings import ServiceSettings


def context() -> ServiceContext[ServiceSettings]:
    none = cast(Any, None)  # NATS and RPC are not used by background tasks
    return ServiceContext("svc", cast(ServiceSettings, none), none, none, none)


async def test_tasks_run_until_stopped_then_are_cancelled_and_awaited() -> None:
    ctx = context()
    ticks: list[int] = []
    cleaned: list[str] = []

    async def job() -> None:
        try:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)
        finally:
            await asyncio.sleep(0)  # cleanup that awaits still runs
            cleaned.append("job")

    ctx.background(job(), "job")
    assert ctx.tasks[0].get_name() == "svc:job"
    await asyncio.sleep(0.02)
    assert ticks
    await ctx.stop_background()
    assert cleaned == ["job"] and ctx.tasks == []


async def test_a_failed_task_is_logged_and_the_others_still_stop(caplog: pytest.LogCaptureFixture) -> None:
    ctx = context()

    async def boom() -> None:
        raise RuntimeError("consumer broke")

    ctx.background(boom(), "boom")
    ctx.background(asyncio.sleep(3600), "sleeper")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="chat.service"):
        await asyncio.wait_for(ctx.stop_background(), 2)
    assert "svc:boom" in caplog.text and "consumer broke" in caplog.text
    assert ctx.tasks == []
