"""The pure batch engine: Eddy's serving and learning logic, with no Kafka and no Redis.

:class:`Engine` turns a batch of :class:`InRecord` into outputs and one
:class:`BatchWrite`; :mod:`stream.engine.serving` holds the per-request
logic that replay and the benchmarks share. The worker (:mod:`stream.worker`)
is the I/O shell around it.
"""

from stream.engine.batch import PROCESSED, Batch, Engine
from stream.engine.records import BatchOutputs, DeadLetter, InRecord
from stream.engine.state import BatchWrite, DecisionsExist, StateReader

__all__ = ["PROCESSED", "Batch", "BatchOutputs", "BatchWrite", "DeadLetter", "DecisionsExist", "Engine", "InRecord", "StateReader"]
