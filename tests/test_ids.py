"""UUIDv7 ids: in order, well-formed, and on the clock however fast they are made."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from domain.ids import derived_id, id_time, is_valid_id, new_id


def test_ids_made_in_a_burst_stay_in_order_and_on_the_clock() -> None:
    before = datetime.now(UTC)
    ids = [new_id() for _ in range(200_000)]
    after = datetime.now(UTC)
    assert ids == sorted(ids), "string order is creation order"
    assert len(set(ids)) == len(ids)
    # A timestamp moved on per id in the same millisecond would be minutes ahead by now.
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= id_time(ids[0])
    assert id_time(ids[-1]) <= after


def test_an_id_is_a_version_7_rfc_9562_uuid() -> None:
    parsed = uuid.UUID(new_id())
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert abs(id_time(str(parsed)).timestamp() - time.time()) < 1


def test_derived_ids_repeat_for_the_same_parent_and_purpose() -> None:
    parent = new_id()
    assert derived_id(parent, "rendered") == derived_id(parent, "rendered")
    assert derived_id(parent, "rendered") != derived_id(parent, "failed")
    assert is_valid_id(derived_id(parent, "x")) and not is_valid_id("not-an-id")
