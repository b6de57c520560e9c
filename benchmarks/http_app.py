"""Baseline "model in a container": the same hybrid scoring behind HTTP (a bare ASGI app under uvicorn).

Routes (JSON bodies are Eddy's own event schemas):

* ``POST /predict``: an ``eddy.query/1`` body -> an ``eddy.prediction/1`` body;
* ``POST /feedback``: an ``eddy.feedback/1`` body -> ``{"applied": bool, "version": n_obs}``;
* ``GET /health``: ``ok`` once the model is loaded.

One process, one event loop, requests handled one after another (scoring is
CPU-bound and the Redis client is synchronous, as in most model servers
written this way). Started by ``python -m benchmarks.sut http --port N``.
"""

from __future__ import annotations

import json

from stream import config, events
from stream.events import EventError


def create_app():
    from benchmarks.scoring import PerEventScorer, load_live_model
    from features.model import limit_threads

    settings = config.from_env()
    limit_threads(settings.torch_threads)
    scorer = PerEventScorer(settings, load_live_model(settings))

    async def read_body(receive) -> bytes:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def respond(send, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        body = await read_body(receive)
        try:
            if method == "POST" and path == "/predict":
                prediction, _ = scorer.predict(events.decode_query(body))
                await respond(send, 200, events.encode(prediction))
            elif method == "POST" and path == "/feedback":
                update = scorer.learn(events.decode_feedback(body))
                out = {"applied": update is not None, "version": update.version if update else None}
                await respond(send, 200, json.dumps(out).encode())
            elif method == "GET" and path == "/health":
                await respond(send, 200, b'"ok"')
            else:
                await respond(send, 404, json.dumps({"error": f"no route {method} {path}"}).encode())
        except EventError as exc:
            await respond(send, 400, json.dumps({"error": exc.reason, "detail": exc.detail}).encode())

    return app
