"""``churnwatch import-history``'s reading side, without a database: the lines the history
step's spill keeps decode to the events read, and the chunks carry what the load step writes
(claims in key order, the ones inside the live horizon, the chunk coalesced)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from churnwatch import files, importer
from services.scoring import aggregate
from services.scoring.store import dedup
from shared.events import Event, encode
from tests.unit.scoring.builders import NOW, survey, ticket, usage

HORIZON = NOW - timedelta(days=8)


def _events() -> list[Event]:
    return [
        usage("acme", at=NOW - timedelta(days=30), event_id="old"),
        usage("acme", at=NOW - timedelta(hours=3), event_id="recent", feature="export"),
        ticket("beta", at=NOW - timedelta(days=2), event_id="tk"),
        survey("beta", at=NOW - timedelta(days=12), event_id="sv"),
        usage("gamma", at=NOW - timedelta(days=9, hours=1), event_id="edge"),
    ]


def test_the_spill_keeps_the_line_read_and_it_decodes_to_the_same_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = _events()
    files.write_events(path, events)
    no_source = b'{"event_type":"usage","event_id":"bare","account_id":"acme",'
    no_source += b'"occurred_at":"2026-11-20T10:00:00Z","user_id":"u1","type":"login"}'
    with path.open("ab") as out:
        out.write(encode(events[0]).replace(b'"old"', b'"crlf"') + b"\r\n")
        out.write(no_source + b"\n")  # filled with --source: the line is not kept as read
    reader = importer.EventReader([path], source="native", as_of=NOW)
    read = list(reader.with_lines())
    assert reader.bad == []
    assert [e.event_id for e, _ in read] == ["old", "recent", "tk", "sv", "edge", "crlf", "bare"]
    assert [line is None for _, line in read] == [False] * 6 + [True]
    assert all(not line.endswith((b"\r", b"\n")) for _, line in read if line is not None)

    spill = importer.DaySpill(tmp_path / "spill")
    (tmp_path / "spill").mkdir()
    for event, line in read:
        spill.add(event, line)
    spill.flush()  # through the files on disk, as a large import goes
    back = {e.event_id: e for day in spill.days() for e in spill.events(day)}
    assert back == {e.event_id: e for e, _ in read}
    assert back["bare"].source == "native"


def test_chunks_hold_claims_in_key_order_the_recent_ones_and_the_fold(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = _events()
    files.write_events(path, [*events, events[3]])  # the last line repeats one in its chunk
    summary = importer.Summary()
    reader = importer.EventReader([path], source="native", as_of=NOW)
    chunks = list(importer.chunks_of(reader, 3, None, summary, HORIZON))

    assert [len(c.events) for c in chunks] == [3, 2]
    assert [c.duplicates for c in chunks] == [0, 1]
    assert summary.events_read == 6
    assert (summary.first_day, summary.last_day) == (
        (NOW - timedelta(days=30)).date(),
        (NOW - timedelta(hours=3)).date(),
    )
    for chunk in chunks:
        keys = [dedup.event_key(e) for e in chunk.events]
        assert chunk.keys == keys
        pairs = list(zip(keys, chunk.events, strict=True))
        assert chunk.claims == sorted((k, e.occurred_at) for k, e in pairs)
        assert chunk.recent == [c for c in chunk.claims if c[1] >= HORIZON]
        assert chunk.batch == aggregate.coalesce(chunk.events)
        assert chunk.fresh(None) == pairs
        assert chunk.fresh({keys[-1]}) == [(keys[-1], chunk.events[-1])]
    recent_ids = {
        e.event_id for c in chunks for k, e in c.fresh(None) if k in {r[0] for r in c.recent}
    }
    assert recent_ids == {"recent", "tk"}  # 9 days back is outside the 8-day horizon
