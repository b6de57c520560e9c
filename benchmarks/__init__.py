"""Eddy's benchmarks: latency and throughput through the real Kafka broker, side by side with baselines.

Run ``python -m benchmarks`` (or ``eddy bench``); ``--quick`` runs every
benchmark briefly to prove the harness works. Results go to
``benchmarks/results/<timestamp>.json`` with PNG plots, and ``BENCHMARKS.md``
is regenerated from them. See docs/benchmarks.md for the method.
"""
