"""docs/schemas/*.json are what the event Structs say, and what the encoder writes fits them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream import events

pytestmark = pytest.mark.unit

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
REGENERATE = "regenerate with: python -m stream.events --write-schemas docs/schemas"


@pytest.mark.parametrize("name", sorted(events.json_schemas()))
def test_schema_file_is_in_sync_with_the_structs(name):
    path = SCHEMAS / f"{name}.json"
    assert path.exists(), f"{path} is missing; {REGENERATE}"
    assert path.read_text() == events.schema_text(events.json_schemas()[name]), f"{path} is stale; {REGENERATE}"


def test_no_schema_file_without_an_event():
    assert {p.stem for p in SCHEMAS.glob("*.json")} == set(events.json_schemas())


def test_write_schemas_writes_what_the_check_reads(tmp_path):
    assert events.main(["--write-schemas", str(tmp_path)]) == 0
    for name, schema in events.json_schemas().items():
        assert json.loads((tmp_path / f"{name}.json").read_text()) == schema


def _samples() -> dict[str, object]:
    d = events.Decision("r1", "u1", 100.0, {"hour": 3.0}, (events.Item("a", {"g": "x"}), events.Item("b")),
                        (0.1, 0.2), (0.5, 0.5), 1, 0.5, "eg", "eg/1", 7, "v1", 3)
    return {
        "query": events.Query("r1", "u1", 1.5, {"d": "tv"}, (events.Item("a"), events.Item("b", {"x": 1.0})), 2),
        "feedback": events.Feedback("r1", "u1", "a", 1.0, 2.0),
        "prediction": events.Prediction("r1", "u1", (events.RankedItem("b", 0.2, 1.0),), ("b",), "v1", 3, "eg/1",
                                        1.5, 5.0),
        "decision": d,
        "outcome": events.Outcome(d, "b", 1.0, 3.0),
        "model_update": events.ModelUpdate("user_weights", "v1", 4, "u1", "r1", {"n_obs": 4.0}, 6.0),
    }


@pytest.mark.parametrize("name", sorted(events.json_schemas()))
def test_encoded_events_fit_their_schema(name):
    """Without a validator dependency: the top-level keys, the schema tag and every required field."""
    schema = events.json_schemas()[name]
    top = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    wire = json.loads(events.encode(_samples()[name]))
    assert set(top["required"]) <= set(wire) <= set(top["properties"])
    assert top["properties"]["schema"] == {"enum": [schema["title"]]} and wire["schema"] == schema["title"]
