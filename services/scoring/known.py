"""What this process knows the database already holds, so that rows which would change nothing
are not sent.

Day masks (merged by union) and an account's activity (merged by least/greatest) only ever
grow. Once a transaction has committed, the database holds at least what it wrote — other
instances can only have grown those rows further. So a later row that what we wrote already
*covers* would merge into a no-op, and skipping it is exact. Under a steady stream this drops
most mask and activity rows: a user active today sets today's bit once, an account's activity
moves once a day.

Memory is bounded: entries live in two generations; when the young one is full the old one is
forgotten. Forgetting costs nothing but a row sent again. Entries are plain ints and tuples of
times, which the cyclic garbage collector stops tracking: a full cache costs no GC time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Generic, TypeVar

from services.scoring.aggregate import MASK_DAYS, Activity, DayMask

K = TypeVar("K")
V = TypeVar("V")

_BITS = (1 << MASK_DAYS) - 1


class _Generations(Generic[K, V]):
    def __init__(self, max_entries: int) -> None:
        self._half = max(1, max_entries // 2)
        self._young: dict[K, V] = {}
        self._old: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._young.get(key)
        if value is None:
            value = self._old.get(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._young[key] = value
        if len(self._young) >= self._half:
            self._old, self._young = self._young, {}

    def __len__(self) -> int:
        return len(self._young) + len(self._old)


MaskKey = tuple[str, str]
# An activity row as remembered: the fields of :class:`Activity`, in order.
_Row = tuple[
    datetime,
    datetime | None,
    date | None,
    datetime | None,
    date | None,
    datetime | None,
    datetime | None,
    tuple[datetime, str, int] | None,
]


class KnownRows:
    """Lower bounds of what the database holds for day masks and activity rows."""

    def __init__(self, max_entries: int = 20_000) -> None:
        self._users: _Generations[MaskKey, int] = _Generations(max_entries)
        self._features: _Generations[MaskKey, int] = _Generations(max_entries)
        self._activity: _Generations[str, _Row] = _Generations(max_entries)

    def __len__(self) -> int:
        return len(self._users) + len(self._features) + len(self._activity)

    # -- what to send ------------------------------------------------------------------------

    def new_users(self, masks: Mapping[MaskKey, DayMask]) -> dict[MaskKey, DayMask]:
        return _uncovered_masks(self._users, masks)

    def new_features(self, masks: Mapping[MaskKey, DayMask]) -> dict[MaskKey, DayMask]:
        return _uncovered_masks(self._features, masks)

    def new_activity(self, rows: Mapping[str, Activity]) -> dict[str, Activity]:
        get = self._activity.get
        out: dict[str, Activity] = {}
        for account, row in rows.items():
            held = get(account)
            if held is None or not _activity(held).covers(row):
                out[account] = row
        return out

    # -- after the commit --------------------------------------------------------------------

    def remember(
        self,
        users: Mapping[MaskKey, DayMask],
        features: Mapping[MaskKey, DayMask],
        activity: Mapping[str, Activity],
    ) -> None:
        """Rows that are now durable (call only once their transaction committed)."""
        _remember_masks(self._users, users)
        _remember_masks(self._features, features)
        known = self._activity
        for account, row in activity.items():
            held = known.get(account)
            merged = _activity(_row(row))
            if held is not None:
                merged.merge(_activity(held))
            known.put(account, _row(merged))


def _pack(mask: DayMask) -> int:
    return mask.anchor << 64 | mask.bits


def _covered(held: int, anchor: int, bits: int) -> bool:
    held_anchor, held_bits = held >> 64, held & _BITS
    if anchor > held_anchor:
        return False
    by = held_anchor - anchor
    shifted = 0 if by >= MASK_DAYS else (bits << by) & _BITS
    return shifted & ~held_bits == 0


def _uncovered_masks(
    known: _Generations[MaskKey, int], masks: Mapping[MaskKey, DayMask]
) -> dict[MaskKey, DayMask]:
    get = known.get
    out: dict[MaskKey, DayMask] = {}
    for key, mask in masks.items():
        held = get(key)
        if held is None or not _covered(held, mask.anchor, mask.bits):
            out[key] = mask
    return out


def _remember_masks(known: _Generations[MaskKey, int], masks: Mapping[MaskKey, DayMask]) -> None:
    for key, mask in masks.items():
        held = known.get(key)
        if held is not None:
            mask = mask.merge(DayMask(held >> 64, held & _BITS))
        known.put(key, _pack(mask))


def _row(a: Activity) -> _Row:
    return (
        a.known_since,
        a.first_usage_at,
        a.last_usage_day,
        a.first_feature_at,
        a.last_feature_day,
        a.last_ticket_at,
        a.last_survey_at,
        a.nps_latest,
    )


def _activity(row: _Row) -> Activity:
    return Activity(*row)
