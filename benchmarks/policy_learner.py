"""What the learner role costs: its learning rate from outcome records, and a policy snapshot's size and load
time (in-process, no broker: the learner's loop around these is one consume and, each second, one MULTI/EXEC).

    python -m benchmarks.policy_learner [--outcomes 2000] [--candidates 10] [--policy vw:exploration=squarecb]

Each outcome is a synthetic logged decision; the learner rebuilds its candidates' embeddings with the feature
net (batches of 500, as it consumes) and learns it (``serving.learn_policy``), as ``eddy learner`` does.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bandits import make_policy
from features.train import train_feature_net
from stream.engine import serving
from stream.events import Decision, Item
from stream.simulator import SimulatedWorld


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.policy_learner", description=__doc__.splitlines()[0])
    p.add_argument("--outcomes", type=int, default=2000)
    p.add_argument("--candidates", type=int, default=10)
    p.add_argument("--policy", default="vw:exploration=squarecb")
    args = p.parse_args(argv)
    model = train_feature_net(SimulatedWorld(n_users=50, n_items=30, seed=3).training_examples(3000), epochs=1,
                              progress=False, version="v1", seed=0)
    policy = make_policy(args.policy)
    rng = np.random.default_rng(0)
    n, k = args.outcomes, min(args.candidates, 30)
    decisions = [Decision(
        request_id=f"r{i}", user_id="u1", ts=1.0, context={"hour": 3.0},
        candidates=tuple(Item(f"i{j}") for j in rng.choice(30, k, replace=False)),
        scores=tuple(rng.normal(size=k).tolist()), pmf=(1 / k,) * k, chosen_index=int(rng.integers(k)),
        propensity=1 / k, policy="vw", policy_version="bench", seed=1, feature_net_version="v1",
        user_weights_version=0) for i in range(n)]
    t0 = time.perf_counter()
    for start in range(0, n, 500):
        chunk = decisions[start:start + 500]
        for d, emb in zip(chunk, serving.decision_embeddings(model, chunk)):
            serving.learn_policy(policy, d, emb, float(rng.random()))
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    blob = policy.to_bytes()
    t2 = time.perf_counter()
    type(policy).from_bytes(blob)
    t3 = time.perf_counter()
    print(f"{args.policy}: learned {n} outcomes ({k} candidates) at {n / elapsed:.0f}/s; snapshot {len(blob)} bytes, "
          f"to_bytes {1000 * (t2 - t1):.1f} ms, from_bytes {1000 * (t3 - t2):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
