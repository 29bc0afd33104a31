-- Transactional outbox: an event whose truth is a PostgreSQL write (a vote, a delete, a review
-- decision) is inserted here in the SAME transaction as that write, so it exists exactly when
-- the write does. The API's relay (api/outbox.py) publishes rows to Kafka and deletes them;
-- a Kafka outage leaves them here until it returns. `event` is the Avro single-object encoding
-- (the writer schema's fingerprint, no registry needed to write it); the relay re-frames it for
-- the topic. Rows are published in `id` order and, being events with their own event_id, a row
-- published twice (a relay crash between Kafka's ack and the delete) is deduplicated downstream.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea,
    event       bytea NOT NULL,
    request_id  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);

-- Wakes every relay (LISTEN outbox) when a transaction that staged events commits: NOTIFY is
-- delivered on commit only, once per transaction and channel, so the hot path pays nothing
-- more than the trigger call, and the relay publishes within milliseconds instead of a poll.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
