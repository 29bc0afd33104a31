"""The bucket lifecycle policy on the real MinIO, and the optional cold-tier rule."""

from __future__ import annotations

from domain.settings import Settings, StorageBackend
from sinks.storage import object_store
from sinks.storage.lifecycle import MEMES_PREFIX, TMP_PREFIX, apply_lifecycle, lifecycle_rules


def test_policy_is_applied_and_reapplied(stack_settings: Settings) -> None:
    store = object_store(stack_settings)
    assert apply_lifecycle(store, stack_settings)
    assert apply_lifecycle(store, stack_settings)  # idempotent: replaces the rules
    rules = store.client.get_bucket_lifecycle(store.bucket).rules  # type: ignore[attr-defined]
    expire = next(r for r in rules if r.rule_id == "expire-tmp")
    assert expire.rule_filter.prefix == TMP_PREFIX and expire.expiration.days == 1


def test_cold_tier_rule_only_when_configured(stack_settings: Settings) -> None:
    assert all(r.transition is None for r in lifecycle_rules(stack_settings).rules)
    tiered = stack_settings.model_copy(
        update={"s3_cold_tier": "GLACIER_IR", "s3_cold_after_days": 30}
    )
    rule = next(r for r in lifecycle_rules(tiered).rules if r.transition is not None)
    assert rule.rule_filter.prefix == MEMES_PREFIX
    assert (rule.transition.days, rule.transition.storage_class) == (30, "GLACIER_IR")


def test_filesystem_backend_has_no_lifecycle(stack_settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    local = stack_settings.model_copy(
        update={"storage_backend": StorageBackend.FILESYSTEM, "storage_path": tmp_path}
    )
    assert apply_lifecycle(object_store(local), local) is False
