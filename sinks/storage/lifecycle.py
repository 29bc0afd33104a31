"""The bucket's lifecycle (tiering) policy, applied at API start-up (idempotent: it replaces the
bucket's rules with these).

- `tmp/`: scratch objects expire after 1 day. (Incomplete multipart uploads: MinIO removes
  stale ones itself after 24 h and refuses the S3 rule for it; on AWS S3 add an
  `AbortIncompleteMultipartUpload` rule in the bucket's infrastructure code.)
- `memes/`: rendered images are permanent until their meme is deleted (the API removes them);
  with `S3_COLD_TIER` set (an S3 storage class such as `GLACIER_IR`, or a MinIO remote tier
  name), images older than `S3_COLD_AFTER_DAYS` (90) move to it. Views concentrate on new memes,
  and the cache and CDN headers shield reads of old ones.
- `templates/uploads/`: kept (templates are reused indefinitely).

The filesystem backend has no lifecycle; `apply_lifecycle` then does nothing.
"""

from __future__ import annotations

from minio.commonconfig import ENABLED, Filter
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule, Transition

from domain.settings import Settings
from sinks.storage.base import ObjectStore
from sinks.storage.s3 import S3ObjectStore

TMP_PREFIX = "tmp/"
MEMES_PREFIX = "memes/"


def lifecycle_rules(settings: Settings) -> LifecycleConfig:
    rules = [
        Rule(
            ENABLED,
            rule_filter=Filter(prefix=TMP_PREFIX),
            rule_id="expire-tmp",
            expiration=Expiration(days=1),
        ),
    ]
    if settings.s3_cold_tier:
        rules.append(
            Rule(
                ENABLED,
                rule_filter=Filter(prefix=MEMES_PREFIX),
                rule_id="memes-to-cold-tier",
                transition=Transition(
                    days=settings.s3_cold_after_days, storage_class=settings.s3_cold_tier
                ),
            )
        )
    return LifecycleConfig(rules)


def apply_lifecycle(store: ObjectStore, settings: Settings) -> bool:
    """Sets the policy on an S3/MinIO bucket; False for backends without lifecycles."""
    if not isinstance(store, S3ObjectStore):
        return False
    store.ensure_bucket()
    store.client.set_bucket_lifecycle(store.bucket, lifecycle_rules(settings))
    return True
