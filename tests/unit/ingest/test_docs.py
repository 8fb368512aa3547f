"""docs/ingest.md documents every INGEST_* variable, with its real default."""

from pathlib import Path

from services.ingest.settings import IngestSettings

DOC = Path(__file__).resolve().parents[3] / "docs" / "ingest.md"


def test_every_ingest_variable_is_in_the_configuration_table() -> None:
    text = DOC.read_text()
    own = [
        name
        for name, field in IngestSettings.model_fields.items()
        if field.validation_alias is None  # the shared ones have fixed names (README)
    ]
    assert own
    for name in own:
        assert f"| `INGEST_{name.upper()}` |" in text, name


def test_the_documented_limits_are_the_defaults() -> None:
    text = DOC.read_text()
    for name in ("max_body_bytes", "max_event_bytes", "max_events_per_request"):
        default = IngestSettings.model_fields[name].default
        assert f"| `INGEST_{name.upper()}` | `{default}` |" in text, name
    future = IngestSettings.model_fields["max_future_seconds"].default
    assert f"| `INGEST_MAX_FUTURE_SECONDS` | `{future:g}` |" in text
