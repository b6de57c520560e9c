"""Every ``eddy`` verb rejects bad input in one line on stderr naming the argument and the value: exit 2, no
traceback, before any I/O (these run with no broker or Redis). Outages (exit 1) are in
tests/integration/test_cli_errors.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stream import cli

pytestmark = pytest.mark.unit

# (argv, {EDDY_* variables}, fragment of the one stderr line)
BAD = [
    # worker
    (["worker", "--max-seconds", "0"], {}, "eddy worker: --max-seconds must be > 0, got 0"),
    (["worker", "--processing", "twice"], {}, "--processing must be exactly_once or at_least_once, got 'twice'"),
    (["worker", "--max-batch", "0"], {}, "--max-batch must be >= 1, got 0"),
    (["worker", "--reward-wait-s", "700"], {}, "--reward-wait-s must be in [0, join_window_s=600], got 700"),
    (["worker", "--default-reward", "nan"], {}, "--default-reward must be a finite number, got nan"),
    (["worker", "--held-feedback-max", "-1"], {}, "--held-feedback-max must be >= 0, got -1"),
    (["worker", "--lsh-bits", "65"], {}, "--lsh-bits must be in [0, 64], got 65"),
    (["worker", "--feature-cache-kinds", "text,cnn"], {}, "--feature-cache-kinds must be a comma-separated list"),
    (["train", "--simulate", "100", "--kind", "text"], {}, "--kind text needs --item-text FIELD"),
    (["demo", "--text-ratings", "-1"], {}, "--text-ratings must be >= 0, got -1"),
    (["worker", "--processes", "0"], {}, "eddy worker: --processes must be >= 1, got 0"),
    (["worker", "--batch-slo-ms", "0"], {}, "--batch-slo-ms must be a finite number > 0, got 0"),
    (["worker", "--outage-give-up-s", "-1"], {}, "--outage-give-up-s must be a finite number > 0, got -1"),
    (["worker", "--linger-ms", "nan"], {}, "--linger-ms must be in [0, 900000], got nan"),
    (["worker", "--join-window-s", "inf"], {}, "--join-window-s must be a finite number > 0, got inf"),
    (["worker", "--poll-timeout-ms", "-1"], {}, "--poll-timeout-ms must be >= 0, got -1"),
    (["worker", "--instance-id", " "], {}, "--instance-id must be non-empty"),
    (["worker", "--max-batch", "many"], {}, "argument --max-batch: invalid int value: 'many'"),
    (["worker"], {"EDDY_MAX_BATCH": "x"}, "eddy worker: EDDY_MAX_BATCH must be int, got 'x'"),
    (["worker"], {"EDDY_CACHE_USERS": "0"}, "eddy worker: EDDY_CACHE_USERS must be >= 1, got 0"),
    (["worker"], {"EDDY_JOIN_WINDOW_S": "nan"}, "EDDY_JOIN_WINDOW_S must be a finite number > 0, got nan"),
    (["worker", "--metrics-port", "70000"], {}, "--metrics-port must be a TCP port in [0, 65535] (0: no metrics endpoint), got 70000"),
    (["worker"], {"EDDY_METRICS_PORT": "-1"}, "eddy worker: EDDY_METRICS_PORT must be a TCP port in [0, 65535]"),
    (["worker", "--metrics-bind", " "], {}, "--metrics-bind must be an IP address or host name"),
    (["worker", "--deadline-ms", "-5"], {}, "--deadline-ms must be in [0, 3600000] (0: off), got -5"),
    (["worker"], {"EDDY_DEADLINE_RESERVE_MS": "inf"}, "EDDY_DEADLINE_RESERVE_MS must be a finite number >= 0, got inf"),
    (["worker", "--anytime-chunk-rows", "0"], {}, "--anytime-chunk-rows must be >= 1, got 0"),
    (["worker", "--cascade-margin", "-1"], {}, "--cascade-margin must be a finite number >= 0, got -1"),
    # produce
    (["produce", "--simulate", "--rate", "0"], {}, "eddy produce: --rate must be > 0, got 0"),
    (["produce", "--simulate", "--rate", "-5"], {}, "--rate must be > 0, got -5"),
    (["produce", "--simulate", "--rate", "nan"], {}, "--rate must be a finite number > 0, got 'nan'"),
    (["produce", "--simulate", "--count", "-3"], {}, "--count must be >= 1, got -3"),
    (["produce", "--simulate", "--count", "1.5"], {}, "--count must be an integer >= 1, got '1.5'"),
    (["produce", "--simulate", "--users", "0"], {}, "--users must be >= 1, got 0"),
    (["produce", "--simulate", "--items", "0"], {}, "--items must be >= 1, got 0"),
    (["produce", "--simulate", "--feedback-ratio", "1.5"], {}, "--feedback-ratio must be in [0, 1], got 1.5"),
    (["produce", "--simulate", "--sim-seed", "-1"], {}, "--sim-seed must be >= 0, got -1"),
    (["produce", "--file", "/no/such/events.jsonl"], {}, "--file must be a readable file, got '/no/such/events.jsonl'"),
    (["produce"], {}, "one of the arguments --file --simulate is required"),
    (["produce", "--simulate"], {"EDDY_PARTITIONS": "0"}, "EDDY_PARTITIONS must be >= 1, got 0"),
    (["produce", "--simulate", "--linger-ms", "-1"], {}, "--linger-ms must be in [0, 900000], got -1.0"),
    # tail
    (["tail", "--max", "0"], {}, "eddy tail: --max must be >= 1, got 0"),
    (["tail", "--timeout", "-1"], {}, "--timeout must be > 0, got -1"),
    (["tail", "--topics", "queries,nope"], {}, "--topics: unknown topic(s) ['eddy.nope']"),
    # stats
    (["stats", "--group", ""], {}, "eddy stats: --group must be non-empty, got ''"),
    (["stats", "--redis-url", "http://127.0.0.1:6379"], {},
     "--redis-url must be a redis://host[:port][/db], rediss://, unix:// or redis+cluster://host:port URL"),
    (["stats", "--redis-url", "redis+cluster://127.0.0.1:7000/2"], {}, "got 'redis+cluster://127.0.0.1:7000/2'"),
    (["stats"], {"EDDY_REDIS_URL": "localhost:6379"}, "EDDY_REDIS_URL must be a redis://"),
    (["stats", "--redis-url", "redis://127.0.0.1:port/0"], {}, "--redis-url must be a redis://host[:port][/db]"),
    (["stats", "--redis-url", "redis://127.0.0.1:6379/zero"], {}, "got 'redis://127.0.0.1:6379/zero'"),
    # topics
    (["topics", "--partitions", "0"], {}, "eddy topics: --partitions must be >= 1, got 0"),
    (["topics", "--bootstrap", "localhost"], {}, "--bootstrap must be host:port[,host:port...], got 'localhost'"),
    (["topics", "--bootstrap", "a:1,b"], {}, "--bootstrap must be host:port"),
    (["topics", "--topic-prefix", "my topics."], {}, "--topic-prefix must be letters, digits"),
    (["topics"], {"EDDY_BOOTSTRAP": "kafka"}, "EDDY_BOOTSTRAP must be host:port"),
    # train
    (["train", "--simulate", "0"], {}, "eddy train: --simulate must be >= 1, got 0"),
    (["train", "--simulate", "100", "--epochs", "0"], {}, "--epochs must be >= 1, got 0"),
    (["train", "--simulate", "100", "--lr", "0"], {}, "--lr must be > 0"),
    (["train", "--simulate", "100", "--device", "tpu"], {}, "--device must be cpu, cuda, cuda:N or mps, got 'tpu'"),
    (["train", "--from-log", "--since-minutes", "-1"], {}, "--since-minutes must be > 0, got -1"),
    (["train", "--simulate", "100"], {"EDDY_SEED": "-1"}, "EDDY_SEED must be >= 0, got -1"),
    (["train"], {}, "one of the arguments --from-file --from-log --simulate is required"),
    # model selection
    (["worker", "--selection", "exp5"], {}, "--selection must be shadow, exp3 or exp4, got 'exp5'"),
    (["worker", "--challengers", "last:0"], {}, "--challengers must be a comma-separated list of versions"),
    (["worker"], {"EDDY_SELECTION_GAMMA": "2"}, "EDDY_SELECTION_GAMMA must be in [0, 1], got 2.0"),
    (["worker", "--selection-loss-scale", "0"], {}, "--selection-loss-scale must be a finite number > 0"),
    # models
    (["models"], {}, "eddy models: the following arguments are required: ACTION"),
    (["models", "promote"], {}, "eddy models promote: the following arguments are required: version"),
    (["models", "drop"], {}, "argument ACTION: invalid choice: 'drop'"),
    (["models", "list", "--partitions", "0"], {}, "--partitions must be >= 1, got 0"),
    # retrain
    (["retrain", "--window", "0"], {}, "--window must be >= 1, got 0"),
    (["retrain", "--device", "gpu"], {}, "eddy retrain: --device must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["retrain", "--max-seconds", "10"], {}, "need --watch"),
    # export
    (["export", "--context-dim", "0"], {}, "eddy export: --context-dim must be >= 1, got 0"),
    (["export", "--format", "xml"], {}, "argument --format: invalid choice: 'xml'"),
    (["export", "--from-offsets", "0=1"], {}, "--from-offsets: '0=1' is not partition:offset"),
    # replay
    (["replay", "--bootstrap", "-1"], {}, "eddy replay: --bootstrap must be >= 0, got -1"),
    (["replay", "--alpha", "1"], {}, "--alpha must be in (0, 1), got 1.0"),
    (["replay", "--seed", "-1"], {}, "--seed must be >= 0, got -1"),
    (["replay", "--learn", "--learn-passes", "0"], {}, "--learn-passes must be >= 1, got 0"),
    (["replay", "--since-minutes", "5", "--since", "1"], {}, "give --since-minutes or --since, not both"),
    (["replay", "--since", "nan"], {}, "eddy replay: --since must be a finite number, got 'nan'"),
    (["export", "--until", "inf"], {}, "eddy export: --until must be a finite number, got 'inf'"),
    # demo
    (["demo", "--candidates", "0"], {}, "eddy demo: --candidates must be >= 1, got 0"),
    (["demo", "--data", "imdb"], {}, "argument --data: invalid choice: 'imdb'"),
    # no verb or an unknown one
    (["launch"], {}, "eddy: argument VERB: invalid choice: 'launch'"),
]


@pytest.mark.parametrize("argv, env, fragment", BAD, ids=[" ".join(r[0]) + (" " + " ".join(r[1]) if r[1] else "")
                                                          for r in BAD])
def test_bad_invocation_is_one_line_naming_the_argument(argv, env, fragment, capsys, monkeypatch):
    for k in [k for k in os.environ if k.startswith("EDDY_") and k != "EDDY_STATE_DIR"]:
        monkeypatch.delenv(k)  # deploy/test points EDDY_BOOTSTRAP at the stack: these rows must not need it
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err + out


BENCH_BAD = [
    (["bench", "--rates", "fast"], "--rates: expected comma-separated numbers, got 'fast'"),
    (["bench", "--from-json", "/no/such/results.json"], "--from-json must be a readable file"),
    (["bench", "--step-seconds", "0"], "--step-seconds must be > 0"),
]


@pytest.mark.parametrize("argv, fragment", BENCH_BAD, ids=[" ".join(r[0]) for r in BENCH_BAD])
def test_bench_bad_invocation_is_one_line(argv, fragment):
    # a subprocess: `eddy bench` replaces its process with `python -m benchmarks` (it would replace pytest)
    proc = subprocess.run([sys.executable, "-m", "stream.cli", *argv], capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def _imported_after(argv: list[str]) -> list[str]:
    code = ("import sys\nfrom stream import cli\ntry:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('stream.commands.', 'benchmarks',"
            " 'torch', 'redis', 'confluent_kafka')))))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\n")[-2].split()


def test_eddy_help_lists_every_verb_and_imports_none():
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for verb, (_, help_) in cli.VERBS.items():
        assert verb in proc.stdout and help_[:30] in " ".join(proc.stdout.split()), verb
    assert _imported_after(["--help"]) == []


def test_a_verbs_help_imports_only_that_verb():
    assert _imported_after(["produce", "--help"]) == ["stream.commands.produce_cmd"]


def _kafka_error():
    from confluent_kafka import KafkaError, KafkaException

    return KafkaException(KafkaError(KafkaError._TRANSPORT, "broker down"))


def _redis_error():
    from redis.exceptions import ResponseError

    return ResponseError("DB index is out of range")


def _unavailable():
    from stream.kafka_io import KafkaUnavailable

    return KafkaUnavailable("no Kafka broker answered at h:1 within 5s (Connection refused)")


@pytest.mark.parametrize("make, code, line", [
    (_kafka_error, 1, "eddy topics: Kafka: broker down"),
    (_redis_error, 1, "eddy topics: Redis: DB index is out of range"),
    (_unavailable, 1, "eddy topics: no Kafka broker answered at h:1 within 5s (Connection refused)"),
    (lambda: PermissionError(13, "Permission denied", "/out/x.json"), 1,
     "eddy topics: cannot use '/out/x.json': Permission denied"),
    (lambda: __import__("stream.config").config.ConfigError("bad\nthing"), 2, "eddy topics: bad thing"),
])
def test_runtime_failures_of_a_verb_are_one_line(make, code, line, capsys, monkeypatch):
    import stream.commands.topics_cmd as verb

    def run(args):
        raise make()

    monkeypatch.setattr(verb, "run", run)
    assert cli.main(["topics"]) == code
    assert capsys.readouterr().err.splitlines() == [line]
