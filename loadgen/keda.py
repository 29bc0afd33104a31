"""The replica count KEDA would request, from the ScaledObjects in `deploy/strimzi`.

KEDA's Kafka scaler (pkg/scalers/kafka_scaler.go) reports `totalLag` as the metric and
the HPA divides by `lagThreshold` (an AverageValue target), so per trigger:

    lag(p)      = latest(p) - committed(p); when the group never committed on p:
                  latest(p) for offsetResetPolicy earliest, 1 for latest, and 0 for either
                  with scaleToZeroOnInvalidOffset
    totalLag    = sum of lag(p)
    upperBound  = partitions with lag > 0 if limitToPartitionsWithLag else all partitions
    if not allowIdleConsumers or limitToPartitionsWithLag:
        totalLag = min(totalLag, upperBound * lagThreshold)
    desired     = ceil(totalLag / lagThreshold)

A ScaledObject takes the largest desired count over its triggers, clamped to
[minReplicaCount, maxReplicaCount]; when every trigger is at or below its activation
threshold and minReplicaCount is 0 it scales to 0. Non-Kafka triggers (Prometheus) cannot be
evaluated offline and are listed as skipped. Fields are read defensively with KEDA's own
defaults so a partial or missing manifest still gives an answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from domain.settings import PROJECT_ROOT
from loadgen.lag import GroupLag

DEFAULT_DIR = PROJECT_ROOT / "deploy" / "strimzi"
KEDA_DEFAULT_MIN = 0
KEDA_DEFAULT_MAX = 100
KEDA_DEFAULT_LAG_THRESHOLD = 10


def _bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() == "true"


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True, slots=True)
class KafkaTrigger:
    name: str
    consumer_group: str
    topic: str
    lag_threshold: int = KEDA_DEFAULT_LAG_THRESHOLD
    activation_lag_threshold: int = 0
    limit_to_partitions_with_lag: bool = False
    allow_idle_consumers: bool = False
    offset_reset_policy: str = "latest"
    scale_to_zero_on_invalid_offset: bool = False

    def partition_lag(self, committed: int, latest: int) -> int:
        """KEDA's getLagForPartition."""
        if committed < 0:
            if self.offset_reset_policy == "latest":
                return 0 if self.scale_to_zero_on_invalid_offset else 1
            return 0 if self.scale_to_zero_on_invalid_offset else latest
        return max(0, latest - committed)

    def total_lag(self, lag: GroupLag) -> int:
        """KEDA's totalLag before the partition cap."""
        return sum(self.partition_lag(p.committed, p.latest) for p in lag.partitions)

    def metric(self, lag: GroupLag) -> int:
        """The value KEDA hands the HPA: totalLag capped by the partitions it may use."""
        lags = [self.partition_lag(p.committed, p.latest) for p in lag.partitions]
        total = sum(lags)
        if not self.allow_idle_consumers or self.limit_to_partitions_with_lag:
            with_lag = sum(1 for v in lags if v > 0)
            bound = with_lag if self.limit_to_partitions_with_lag else len(lags)
            if self.lag_threshold and total / self.lag_threshold > bound:
                total = bound * self.lag_threshold
        return total

    def desired(self, lag: GroupLag) -> int:
        return math.ceil(self.metric(lag) / max(1, self.lag_threshold))

    def active(self, lag: GroupLag) -> bool:
        return self.total_lag(lag) > self.activation_lag_threshold


@dataclass(frozen=True, slots=True)
class ScaledObject:
    name: str
    min_replicas: int = KEDA_DEFAULT_MIN
    max_replicas: int = KEDA_DEFAULT_MAX
    kafka_triggers: tuple[KafkaTrigger, ...] = ()
    other_triggers: tuple[str, ...] = field(default_factory=tuple)

    def desired(self, lags: Mapping[tuple[str, str], GroupLag]) -> int | None:
        """Replicas for these lags (None when none of its Kafka triggers could be read)."""
        wanted: list[int] = []
        active = False
        for trigger in self.kafka_triggers:
            lag = lags.get((trigger.consumer_group, trigger.topic))
            if lag is None:
                continue
            wanted.append(trigger.desired(lag))
            active = active or trigger.active(lag)
        if not wanted:
            return None
        if not active and self.min_replicas == 0:
            return 0
        return max(self.min_replicas, min(self.max_replicas, max(wanted)))


def parse(document: Mapping[str, Any]) -> ScaledObject | None:
    if not isinstance(document, Mapping) or document.get("kind") != "ScaledObject":
        return None
    spec = document.get("spec") or {}
    kafka: list[KafkaTrigger] = []
    others: list[str] = []
    for i, trigger in enumerate(spec.get("triggers") or []):
        meta = trigger.get("metadata") or {}
        name = str(trigger.get("name") or f"trigger-{i}")
        if trigger.get("type") != "kafka" or not meta.get("topic") or not meta.get("consumerGroup"):
            others.append(f"{name} ({trigger.get('type')})")
            continue
        kafka.append(
            KafkaTrigger(
                name=name,
                consumer_group=str(meta["consumerGroup"]),
                topic=str(meta["topic"]),
                lag_threshold=_int(meta.get("lagThreshold"), KEDA_DEFAULT_LAG_THRESHOLD),
                activation_lag_threshold=_int(meta.get("activationLagThreshold"), 0),
                limit_to_partitions_with_lag=_bool(meta.get("limitToPartitionsWithLag")),
                allow_idle_consumers=_bool(meta.get("allowIdleConsumers")),
                offset_reset_policy=str(meta.get("offsetResetPolicy") or "latest"),
                scale_to_zero_on_invalid_offset=_bool(meta.get("scaleToZeroOnInvalidOffset")),
            )
        )
    return ScaledObject(
        name=str((document.get("metadata") or {}).get("name") or "unnamed"),
        min_replicas=_int(spec.get("minReplicaCount"), KEDA_DEFAULT_MIN),
        max_replicas=_int(spec.get("maxReplicaCount"), KEDA_DEFAULT_MAX),
        kafka_triggers=tuple(kafka),
        other_triggers=tuple(others),
    )


def load_scaled_objects(folder: Path = DEFAULT_DIR) -> list[ScaledObject]:
    """Every ScaledObject in the folder's YAML files; [] when there are none yet."""
    found: list[ScaledObject] = []
    if not folder.is_dir():
        return found
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            documents: Iterable[Any] = list(yaml.safe_load_all(path.read_text()))
        except (yaml.YAMLError, OSError):
            continue
        for document in documents:
            parsed = parse(document) if isinstance(document, Mapping) else None
            if parsed is not None:
                found.append(parsed)
    return found


def with_group_prefix(objects: list[ScaledObject], prefix: str | None) -> list[ScaledObject]:
    """Rewrite `memestream-<role>` groups to `<prefix>-<role>` (tests use their own prefix)."""
    if not prefix or prefix == "memestream":
        return objects
    out = []
    for so in objects:
        triggers = tuple(
            KafkaTrigger(**{**_fields(t), "consumer_group": _reprefix(t.consumer_group, prefix)})
            for t in so.kafka_triggers
        )
        out.append(
            ScaledObject(so.name, so.min_replicas, so.max_replicas, triggers, so.other_triggers)
        )
    return out


def _reprefix(group: str, prefix: str) -> str:
    head, sep, role = group.partition("-")
    return f"{prefix}-{role}" if sep and head == "memestream" else group


def _fields(trigger: KafkaTrigger) -> dict[str, Any]:
    return {name: getattr(trigger, name) for name in trigger.__dataclass_fields__}
