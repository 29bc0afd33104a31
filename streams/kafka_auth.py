"""Faust's Kafka credentials from the settings (the librdkafka side is producers/kafka_security).

PLAINTEXT (the local stack, compose) gives None, so the Faust app is configured exactly as
before; SSL uses the system's trust store; SASL_* log in as the service's SCRAM KafkaUser.
"""

from __future__ import annotations

import ssl

import faust
from faust.types.auth import CredentialsT

from domain.settings import Settings
from producers.kafka_security import sasl_mechanism, uses_sasl


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """`broker_credentials` for `faust.App`, or None when the broker speaks PLAINTEXT."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if protocol.endswith("SSL") else None
    if not uses_sasl(settings):
        assert context is not None  # protocol is SSL
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        mechanism=sasl_mechanism(settings),
        ssl_context=context,
    )
