-- Users (argon2 password hashes, roles), API keys (stored as SHA-256 of a 256-bit random
-- secret: high-entropy keys need no slow hash, and a lookup stays one index probe), votes (one
-- per user and meme, changeable), full-text search over templates and captions, and the
-- `trending_daily` materialized view the trending issue falls back to when Redis is empty.

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    username       text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
    email          text,
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled_at    timestamptz
);
-- Login looks a user up by name, case-insensitively.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
-- Every authenticated request with a key: one probe by hash.
CREATE UNIQUE INDEX api_keys_hash_key ON api_keys (key_hash);
-- A user's keys, listed newest first.
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);

-- One vote per user and meme; a changed vote updates the row. meme_created_at lets a join to
-- the partitioned memes table prune to one partition.
CREATE TABLE votes (
    meme_id          uuid NOT NULL,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    meme_created_at  timestamptz NOT NULL,
    value            smallint NOT NULL CHECK (value IN (-1, 1)),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meme_id, user_id)
);
-- A user's votes; and the day scan of the trending view.
CREATE INDEX votes_user_idx ON votes (user_id, updated_at DESC);
CREATE INDEX votes_updated_idx ON votes (updated_at);

-- Templates: catalog entries (seeded from templates/) and uploads, searchable by name, category,
-- tags and description (English stemming: template names are English words).
ALTER TABLE templates
    ADD COLUMN description text NOT NULL DEFAULT '',
    ADD COLUMN frame_count integer NOT NULL DEFAULT 1,
    ADD COLUMN source text NOT NULL DEFAULT 'catalog' CHECK (source IN ('catalog', 'upload')),
    ADD COLUMN owner_id uuid,
    ADD COLUMN image_key text,
    ADD COLUMN media_type text;

CREATE FUNCTION memestream_words(parts text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(array_to_string(parts, ' '), '') $$;

ALTER TABLE templates ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', coalesce(name, '')), 'A')
    || setweight(to_tsvector('english', memestream_words(tags)), 'B')
    || setweight(to_tsvector('english', coalesce(category, '')), 'B')
    || setweight(to_tsvector('english', coalesce(description, '')), 'C')
) STORED;
CREATE INDEX templates_search_idx ON templates USING gin (search);
CREATE INDEX templates_category_idx ON templates (category, id);

-- Captions: 'simple' (no stemming, no stop words) because captions are any language and slang.
ALTER TABLE memes ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', memestream_words(texts))
) STORED;
CREATE INDEX memes_search_idx ON memes USING gin (search);
-- Search and listings show only live memes, newest first.
CREATE INDEX memes_live_created_idx ON memes (created_at DESC) WHERE status = 'rendered';

-- Votes per meme and day, scored: the PostgreSQL fallback of the trending set. Refreshed
-- concurrently (the unique index allows it) by `sinks.postgres.votes.refresh_trending_daily`.
-- score = net votes of the day (up - down); deleted memes drop out.
CREATE MATERIALIZED VIEW trending_daily AS
SELECT
    (v.updated_at AT TIME ZONE 'UTC')::date AS day,
    v.meme_id,
    sum(v.value)::double precision AS score,
    count(*)::bigint AS votes
FROM votes v
JOIN memes m ON m.id = v.meme_id AND m.created_at = v.meme_created_at
WHERE m.status <> 'deleted'
GROUP BY 1, 2
WITH DATA;
CREATE UNIQUE INDEX trending_daily_key ON trending_daily (day, meme_id);
CREATE INDEX trending_daily_rank_idx ON trending_daily (day, score DESC);
