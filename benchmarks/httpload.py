"""The same open-loop generator over HTTP/1.1 keep-alive connections (asyncio streams, stdlib only).

Query ``i`` is scheduled at ``t0 + i / rate``; at that time it takes a free
connection from the pool (waiting for one counts in its latency, as queueing
should) and its latency runs from the scheduled time to the end of the
response. Requests still open when the step's drain time ends are cancelled
and count as unanswered; their connections are closed and replaced.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time

import numpy as np

from benchmarks.loadgen import QueryPool, step_summary
from stream import events


class HttpError(RuntimeError):
    pass


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def request(self, method: bytes, path: bytes, body: bytes = b"") -> bytes:
        self.writer.write(b"%s %s HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                          b"content-length: %d\r\n\r\n%s" % (method, path, len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        i = lower.find(b"content-length:")
        if i < 0:
            raise HttpError(f"response without content-length: {head[:200]!r}")
        n = int(lower[i + 15 : lower.index(b"\r\n", i)])
        data = await self.reader.readexactly(n)
        if status != 200:
            raise HttpError(f"{method.decode()} {path.decode()} -> {status}: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.writer.close()


class HttpLoad:
    def __init__(self, port: int, pool: QueryPool, *, connections: int, feedback_ratio: float, seed: int = 0,
                 saturate_ms: float = 1000.0):
        self.port = port
        self.saturate_ms = saturate_ms
        self.pool = pool
        self.connections = connections
        self.feedback_ratio = feedback_ratio
        self.rng = np.random.default_rng(seed)
        self.loop = asyncio.new_event_loop()
        self._free: asyncio.Queue[_Conn] | None = None
        self._open = 0

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        async def _close():
            while self._free is not None and not self._free.empty():
                self._free.get_nowait().close()
        self.run(_close())
        self.loop.close()

    async def _top_up(self) -> None:
        if self._free is None:
            self._free = asyncio.Queue()
        while self._open < self.connections:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self._free.put_nowait(_Conn(reader, writer))
            self._open += 1

    async def call(self, method: bytes, path: bytes, body: bytes = b"") -> bytes:
        """One request on a pooled connection; a cancelled or failed request's connection is dropped."""
        conn = await self._free.get()
        try:
            data = await conn.request(method, path, body)
        except BaseException:
            conn.close()
            self._open -= 1
            raise
        self._free.put_nowait(conn)
        return data

    async def ready(self, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while True:
            try:
                await self._top_up()
                await self.call(b"GET", b"/health")
                return
            except OSError:
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ steps
    def run_step(self, rate: float, duration_s: float, *, drain_s: float, tag: str,
                 users: list[bytes] | None = None) -> dict:
        gc.collect()
        gc.disable()
        try:
            return self.run(self._step(rate, duration_s, drain_s, tag, users))
        finally:
            gc.enable()

    async def _step(self, rate, duration_s, drain_s, tag, users) -> dict:
        await self._top_up()
        n = max(1, int(rate * duration_s))
        lat = np.full(n, np.inf)
        lag = np.zeros(n)
        tagb = tag.encode()
        fb_tasks: list[asyncio.Task] = []
        state = {"first": None, "last": None, "fb": 0}
        t0 = time.perf_counter() + 0.05

        async def one(i: int, due: float) -> None:
            _, body = self.pool.body(i, tagb + str(i).encode(), users[i % len(users)] if users else None)
            lag[i] = (time.perf_counter() - due) * 1000
            data = await self.call(b"POST", b"/predict", body)
            now = time.perf_counter()
            lat[i] = (now - due) * 1000
            state["first"] = state["first"] or now
            state["last"] = now
            if self.feedback_ratio and self.rng.random() < self.feedback_ratio:
                p = json.loads(data)
                fb = events.Feedback(p["request_id"], p["user_id"], p["chosen"][0],
                                     float(self.rng.random() < 0.3), time.time())
                fb_tasks.append(asyncio.ensure_future(self.call(b"POST", b"/feedback", events.encode(fb))))
                state["fb"] += 1

        tasks = []
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0.0015:  # the loop's timers are only ms-accurate: sleep short, then yield until due
                await asyncio.sleep(delay - 0.001)
            while time.perf_counter() < due:
                await asyncio.sleep(0)
            tasks.append(asyncio.ensure_future(one(i, due)))
        remaining = t0 + duration_s + drain_s - time.perf_counter()
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, remaining))
        for t in pending:
            t.cancel()
        fb_pending = [t for t in fb_tasks if not t.done()]
        if fb_pending:
            _, still = await asyncio.wait(fb_pending, timeout=2.0)
            for t in still:
                t.cancel()
        await asyncio.gather(*tasks, *fb_tasks, return_exceptions=True)
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()
        return step_summary(rate, duration_s, lat, lag, first=state["first"], last=state["last"],
                            feedback_sent=state["fb"], saturate_ms=self.saturate_ms)

    async def closed_loop(self, bodies: list[tuple[bytes, bytes]]) -> tuple[list[bytes], float]:
        """Send ``(path, body)`` requests as fast as ``connections`` keep-alive connections allow."""
        await self._top_up()
        out: list[bytes] = [b""] * len(bodies)
        it = iter(range(len(bodies)))

        async def worker() -> None:
            for i in it:
                out[i] = await self.call(b"POST", bodies[i][0], bodies[i][1])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.connections)))
        return out, time.perf_counter() - t0
