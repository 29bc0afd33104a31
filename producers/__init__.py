"""Kafka producing: the topic registry, Avro serialisation and the idempotent producer."""
