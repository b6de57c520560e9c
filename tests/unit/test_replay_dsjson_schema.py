"""The DSJSON contract for other producers: the schema file is in sync, and the documented minimal line replays."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.replay import dsjson_schema
from stream.replay.dsjson import from_dsjson, read_dsjson

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ('{"_label_cost":-1,"_label_probability":0.5,"_label_Action":2,"a":[2,1],"p":[0.5,0.5],'
           '"c":{"_multi":[{"i":{"id":"a"}},{"i":{"id":"b"}}]}}')


def test_schema_file_is_in_sync_with_the_structs():
    path = ROOT / dsjson_schema.SCHEMA_PATH
    assert path.read_text() == dsjson_schema.schema_text(), \
        "stale; regenerate with: python -m stream.replay.dsjson_schema"


def test_the_documented_minimal_line_replays(tmp_path):
    assert MINIMAL in (ROOT / "docs" / "replay.md").read_text()
    path = tmp_path / "foreign.dsjson"
    path.write_text(MINIMAL + "\n" + MINIMAL.replace('"_label_Action":2', '"_label_Action":1') + "\n")
    first, second = read_dsjson(path)
    assert first.decision.chosen_item == "b" and first.reward == 1.0 and first.decision.propensity == 0.5
    assert first.decision.pmf == (0.5, 0.5) and first.decision.user_id == "unknown"
    assert first.origin == f"{path}:1" and first.decision.request_id == "foreign.dsjson:1"
    assert second.decision.chosen_item == "a"


def test_optional_keys_are_taken_when_present():
    line = {"_label_cost": 0.0, "_label_probability": 0.25, "_labelIndex": 0, "EventId": "e1",
            "Timestamp": "2026-01-02T03:04:05Z", "a": [1, 2], "p": [0.25, 0.75],
            "c": {"u": {"user_id": "u9"}, "x": {"device": "tv", "hour": 3},
                  "_multi": [{"i": {"id": 17}, "f": {"genre": "drama"}}, {"i": {"id": "b"}}]}}
    r = from_dsjson(line)
    d = r.decision
    assert (d.request_id, d.user_id, d.context, d.candidates[0].id, d.candidates[0].features) == \
        ("e1", "u9", {"device": "tv", "hour": 3}, "17", {"genre": "drama"})
    assert d.ts == 1767323045.0 and d.chosen_index == 0 and r.reward == 0.0
