-- Templates and memes. Memes are partitioned by month of creation; a meme id is a
-- UUIDv7, so its creation time (and partition) follows from the id alone.

CREATE TABLE templates (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    category    text NOT NULL DEFAULT 'general',
    tags        text[] NOT NULL DEFAULT '{}',
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    animated    boolean NOT NULL DEFAULT false,
    boxes       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memes (
    id           uuid NOT NULL,
    created_at   timestamptz NOT NULL,
    template_id  text NOT NULL,
    texts        text[] NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'rendered', 'failed', 'deleted')),
    owner_id     text,
    format       text,
    variants     jsonb NOT NULL DEFAULT '[]',
    render_ms    double precision,
    error        text,
    rendered_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE memes_default PARTITION OF memes DEFAULT;

CREATE INDEX memes_template_idx ON memes (template_id, created_at DESC);
CREATE INDEX memes_owner_idx ON memes (owner_id, created_at DESC) WHERE owner_id IS NOT NULL;

-- Creates the month's partition if missing; `migrate` calls it for the months around now.
CREATE FUNCTION ensure_memes_partition(month date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    name text := format('memes_%s', to_char(first_day, 'YYYY_MM'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF memes FOR VALUES FROM (%L) TO (%L)',
            name, first_day, (first_day + interval '1 month')::date
        );
    END IF;
END $$;
