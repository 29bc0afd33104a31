"""Kafka client security from the settings, for librdkafka (confluent-kafka) and aiokafka clients.

Why one place: the producer, the admin client and the consumers all log in the same way. The
local stack and compose speak PLAINTEXT, so nothing is added there and the config stays what it
was; on Strimzi each service is a SCRAM-SHA-512 `KafkaUser` (deploy/strimzi/users.yaml), so with
`KAFKA_SECURITY_PROTOCOL=SASL_SSL` (or `SASL_PLAINTEXT`) the SASL keys are set. A SASL protocol
without `KAFKA_SASL_MECHANISM` means SCRAM-SHA-512, the mechanism the KafkaUsers use.
"""

from __future__ import annotations

import ssl
from typing import Any

from domain.settings import Settings

DEFAULT_SASL_MECHANISM = "SCRAM-SHA-512"


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def sasl_mechanism(settings: Settings) -> str:
    return settings.kafka_sasl_mechanism or DEFAULT_SASL_MECHANISM


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """The security keys of a confluent-kafka config; empty for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    config = {"security.protocol": protocol}
    if uses_sasl(settings):
        config["sasl.mechanism"] = sasl_mechanism(settings)
        if settings.kafka_sasl_username is not None:
            config["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl.password"] = settings.kafka_sasl_password
    return config


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """The same as keyword arguments of aiokafka's consumers and producers; empty for PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        kwargs["ssl_context"] = ssl.create_default_context()
    if uses_sasl(settings):
        kwargs["sasl_mechanism"] = sasl_mechanism(settings)
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = settings.kafka_sasl_password
    return kwargs
