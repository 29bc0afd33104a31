-- Memestream analytics schema (ClickHouse server and chDB alike). Applied by
-- sinks.clickhouse.apply_schema(): every statement is idempotent (IF NOT EXISTS), statements are
-- separated by a line that ends with ';'. Tables live in the client's current database.
--
-- events: one row per event of every topic, written by the analytics agent in batches.
--   Dedupe: ReplacingMergeTree on the sorting key (event_type, hour, event_id). A replayed event
--   has the same event_id, type and event time (the event carries it), so it lands on the same
--   key and merges away; `SELECT ... FROM events FINAL` (or count(DISTINCT event_id)) is exact
--   even before the merge.
--   Which event carries what: render_ms, format, bytes, sentiment and moderation_* on `rendered`
--   (a meme the moderation rejects is `failed` with moderation_label 'rejected'); vote (+1/-1) on
--   `vote`; template_id and category on every event whose producer knows them.
--   TTL: raw rows live 90 days (Kafka keeps 1 to 30 days; the rollups keep 400 days).
--   The CHECK constraints reject unknown event types and votes outside -1..1: the agent validates
--   each event first and sends bad ones to the DLQ, since a rejected batch is rejected whole.
--
-- Rollups (materialized views into AggregatingMergeTree tables, per minute): a view fires on every
--   insert, duplicates included, so every count is a uniq state of event_id (exact up to 65,536
--   distinct ids per row, about 1 % error above) and a replay never inflates it. Latency and size
--   are digests / averages, which a handful of duplicates barely moves. Read them with
--   uniqMerge(...), quantilesTDigestMerge(0.5, 0.95, 0.99)(...), avgMerge(...).

CREATE TABLE IF NOT EXISTS events
(
    event_id          String,
    event_type        LowCardinality(String),
    meme_id           String,
    template_id       LowCardinality(String) DEFAULT '',
    category          LowCardinality(String) DEFAULT '',
    user_id           String DEFAULT '',
    ts                DateTime64(3, 'UTC'),
    render_ms         UInt32 DEFAULT 0,
    vote              Int8 DEFAULT 0,
    sentiment         LowCardinality(String) DEFAULT '',
    moderation_label  LowCardinality(String) DEFAULT '',
    moderation_score  Float32 DEFAULT 0,
    format            LowCardinality(String) DEFAULT '',
    bytes             UInt64 DEFAULT 0,
    ingested_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    CONSTRAINT known_event_type
        CHECK event_type IN ('requested', 'rendered', 'failed', 'view', 'vote', 'deleted'),
    CONSTRAINT vote_range CHECK vote BETWEEN -1 AND 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (event_type, toStartOfHour(ts), event_id)
TTL toDateTime(ts) + INTERVAL 90 DAY DELETE;

-- Per minute, per event type and content dimensions: generation rate, failures, render latency,
-- memes per template and category, sentiment mix, moderation outcomes, formats.
CREATE TABLE IF NOT EXISTS events_per_minute
(
    minute            DateTime('UTC'),
    event_type        LowCardinality(String),
    template_id       LowCardinality(String),
    category          LowCardinality(String),
    sentiment         LowCardinality(String),
    moderation_label  LowCardinality(String),
    format            LowCardinality(String),
    events            AggregateFunction(uniq, String),
    users             AggregateFunction(uniq, String),
    render_ms         AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), UInt32),
    moderation_score  AggregateFunction(avg, Float32),
    bytes             AggregateFunction(avg, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, event_type, template_id, category, sentiment, moderation_label, format)
TTL minute + INTERVAL 400 DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_per_minute_mv TO events_per_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    event_type,
    template_id,
    category,
    sentiment,
    moderation_label,
    format,
    uniqState(event_id) AS events,
    uniqState(user_id) AS users,
    quantilesTDigestState(0.5, 0.95, 0.99)(render_ms) AS render_ms,
    avgState(moderation_score) AS moderation_score,
    avgState(bytes) AS bytes
FROM events
GROUP BY minute, event_type, template_id, category, sentiment, moderation_label, format;

-- Per minute and meme: views and votes for trending and top memes and templates. template_id is
-- whatever the view/vote event carried ('' when the producer did not know it).
CREATE TABLE IF NOT EXISTS engagement_per_minute
(
    minute            DateTime('UTC'),
    meme_id           String,
    template_id       LowCardinality(String),
    views             AggregateFunction(uniq, String),
    upvotes           AggregateFunction(uniq, String),
    downvotes         AggregateFunction(uniq, String),
    viewers           AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, meme_id, template_id)
TTL minute + INTERVAL 400 DAY DELETE;

CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_per_minute_mv TO engagement_per_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    meme_id,
    template_id,
    uniqStateIf(event_id, event_type = 'view') AS views,
    uniqStateIf(event_id, event_type = 'vote' AND vote > 0) AS upvotes,
    uniqStateIf(event_id, event_type = 'vote' AND vote < 0) AS downvotes,
    uniqStateIf(user_id, event_type = 'view' AND user_id != '') AS viewers
FROM events
WHERE event_type IN ('view', 'vote')
GROUP BY minute, meme_id, template_id;
