"""A minimal faust-streaming app for the foundation test: upper-cases records from one topic into another.

Topic names come from the environment so each test run uses its own."""

import os

import faust

app = faust.App(
    os.environ["ECHO_APP_ID"],
    broker=f"kafka://{os.environ.get('EDDY_BOOTSTRAP', '127.0.0.1:9092')}",
    value_serializer="raw",
    web_enabled=False,
    topic_partitions=2,
    topic_replication_factor=1,
    store="memory://",
    producer_linger_ms=1,
)
source = app.topic(os.environ["ECHO_SOURCE"], value_type=bytes, value_serializer="raw")
sink = app.topic(os.environ["ECHO_SINK"], value_type=bytes, value_serializer="raw")


@app.agent(source)
async def upper(stream):
    async for value in stream:
        await sink.send(value=value.upper())
