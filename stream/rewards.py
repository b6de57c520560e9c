"""The reward timer: the default reward for decisions whose reward did not come within the wait time.

With ``reward_wait_s`` > 0, the batch that decides a request adds it to
``{pN}:pending`` (a sorted set scored by decision time + wait) in its
``MULTI/EXEC``, and the batch that applies its reward (real, held or default)
removes it in its own. About once a second, between batches and while no
span's commit is in flight, this timer looks at the partitions this worker holds epochs of:

1. reads the entries past their deadline and their decisions;
2. re-scores them to now + ``LEASE_S`` (a lease) in one ``MULTI/EXEC`` fenced
   by the partitions' epochs, so that the next ticks do not emit them again
   while their default reward is on its way;
3. publishes, for each, a feedback event with ``default: true`` (the decision's
   chosen item, ``default_reward``, ``ts`` = the deadline) into the feedback
   topic, to the request's own partition, in a Kafka transaction of its own.

The normal join then applies it exactly once (applied-markers, as any
feedback). If the publish fails, or the worker dies after step 2, the lease
runs out and the partition's owner emits it again. If it is emitted twice (a
lease that ran out while the first was still queued), the second one finds
the marker and is counted as ``default_reward_superseded``, as is a default
whose request got its real reward first.

With ``reward_aggregation=sum`` the same event *closes* the request's sum: the
batch that joins it applies the sum of the rewards accumulated within the wait
instead of the default reward, if any came (:mod:`stream.engine.aggregation`);
the timer itself does not change.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Producer

from stream import events
from stream.engine import BatchWrite
from stream.engine.joins import JoinRecord
from stream.kafka_io import publish_alone
from stream.periodic import PartitionJob

log = logging.getLogger("eddy.rewards")

TICK_S = 1.0
LEASE_S = 30.0  # longer than a default reward takes from the timer to its batch's EXEC
DUE_LIMIT = 1000  # per partition per tick: a backlog drains over a few ticks


class RewardTimer(PartitionJob):
    every_s = TICK_S
    log = log  # this module's logger, for PartitionJob's warning
    kafka_failed = "could not publish default rewards (%s); they are emitted again when their lease ends"

    def enabled(self) -> bool:
        return self.s.reward_wait_s > 0

    def _run(self, producer: Producer, eos: bool, epochs: dict[int, int]) -> None:
        wall = time.time()
        due = {p: self.store.due_pending(p, wall, DUE_LIMIT) for p in sorted(epochs)}
        decisions = self.store.load_decisions({r: p for p, rids in due.items() for r in rids})
        write = BatchWrite()
        out = []
        topic = self.s.topic("feedback")
        for p, rids in due.items():
            for rid in rids:
                data = decisions.get(rid)
                if data is None:  # expired (the worker was down for twice the join window): nothing to reward
                    write.rewarded.add((p, rid))
                    write.counts["default_reward_expired"] = write.counts.get("default_reward_expired", 0) + 1
                    continue
                d = JoinRecord.unpack(data).decision
                # rid is a slate position's join key (stream/engine/slates.py): the decision names its request
                fb = events.Feedback(d.request_id, d.user_id, d.chosen_item, self.s.default_reward,
                                     d.ts + self.s.reward_wait_s, default=True, position=d.position)
                out.append((topic, p, d.user_id.encode(), events.encode(fb), None))
                write.leased[(p, rid)] = wall + LEASE_S
        if not write or not self.store.commit(write, group=self.s.group, epochs=epochs, instance=self.s.instance_id):
            return
        if out:
            publish_alone(producer, eos, out)
            self.stats["default_rewards_emitted"] += len(out)
