"""An unreachable Kafka or Redis, or a missing topic, ends an ``eddy`` verb in one stderr line, no traceback,
and none of librdkafka's own retry log (about 200 lines for a wrong bootstrap address before this was fixed).

Each row runs ``python -m stream.cli`` as a user would, so stderr holds whatever librdkafka writes
to the file descriptor directly. The live stack is there (the other verbs' settings point at it);
only the one address under test is wrong: port 1, where nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

pytestmark = pytest.mark.integration

NO_KAFKA = ["--bootstrap", "127.0.0.1:1"]
NO_REDIS = ["--redis-url", "redis://127.0.0.1:1/0"]

ROWS = [
    # argv, exit code, fragment of the one line
    (["topics", *NO_KAFKA], 1, "no Kafka broker answered at 127.0.0.1:1"),
    (["produce", "--simulate", "--count", "5", *NO_KAFKA], 1, "no Kafka broker answered at 127.0.0.1:1"),
    (["tail", "--max", "1", *NO_KAFKA], 1, "no Kafka broker answered at 127.0.0.1:1"),
    (["export", *NO_KAFKA], 1, "no Kafka broker answered at 127.0.0.1:1"),
    (["stats", *NO_REDIS], 1, "Redis did not answer"),
    (["models", "list", *NO_REDIS], 1, "Redis did not answer"),
    (["stats", "--redis-url", "REDIS_DB_99999"], 1, "Redis: DB index is out of range"),
    (["tail", "--max", "1", "--topic-prefix", "PREFIX"], 2, "topic 'PREFIXpredictions' does not exist"),
]


@pytest.mark.parametrize("argv, code, fragment", ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_outage_or_missing_topic_is_one_line(stack, tmp_path, argv, code, fragment):
    prefix = f"nothing{uuid.uuid4().hex[:8]}."  # a deployment with no topics
    argv = [prefix if a == "PREFIX" else a for a in argv]
    argv = [stack["redis_url"].rsplit("/", 1)[0] + "/99999" if a == "REDIS_DB_99999" else a for a in argv]
    fragment = fragment.replace("PREFIX", prefix)
    env = {**os.environ, "EDDY_BOOTSTRAP": stack["bootstrap"], "EDDY_REDIS_URL": stack["redis_url"],
           "EDDY_MODEL_DIR": str(tmp_path / "models")}
    if "--topic-prefix" not in argv:
        env["EDDY_TOPIC_PREFIX"] = prefix
    proc = subprocess.run([sys.executable, "-m", "stream.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, proc.stderr[-3000:]
    assert len(lines) == 1, f"{len(lines)} lines:\n" + proc.stderr[-3000:]
    assert lines[0].startswith(f"eddy {argv[0]}: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
