-- Monthly partitions are kept ahead of time by `sinks.postgres.partitions` (migrate, API
-- start-up and a daily task), but a month can still be late: rows of a month with no
-- partition land in memes_default, and PostgreSQL then refuses to create that month's
-- partition ("updated partition constraint for default partition would be violated").
-- ensure_memes_partition now moves those rows itself, in the caller's one transaction:
-- detach the default partition, create the month's, move its rows over, attach the default
-- again. Bounds are UTC midnights, whatever the session's TimeZone (meme ids are UTC).
-- Returns NULL when the partition already existed, else the number of rows moved.

DROP FUNCTION ensure_memes_partition(date);

CREATE FUNCTION ensure_memes_partition(month date) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    lower_bound timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    upper_bound timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    name text := format('memes_%s', to_char(first_day, 'YYYY_MM'));
    default_part regclass;
    stranded boolean := false;
    columns text;
    moved bigint := 0;
BEGIN
    IF to_regclass(name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- Creating a partition takes this lock anyway; taking it first makes concurrent callers
    -- (several API replicas starting) wait here and then find the partition made.
    LOCK TABLE memes IN ACCESS EXCLUSIVE MODE;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN NULL;
    END IF;

    SELECT nullif(partdefid, 0)::regclass INTO default_part
    FROM pg_partitioned_table WHERE partrelid = 'memes'::regclass;
    IF default_part IS NOT NULL THEN
        EXECUTE format(
            'SELECT EXISTS (SELECT 1 FROM %s WHERE created_at >= $1 AND created_at < $2)',
            default_part
        ) INTO stranded USING lower_bound, upper_bound;
    END IF;

    IF NOT stranded THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF memes FOR VALUES FROM (%L) TO (%L)',
            name, lower_bound, upper_bound
        );
        RETURN 0;
    END IF;

    -- Every stored column; generated ones (the caption tsvector) are recomputed on insert.
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
    FROM pg_attribute
    WHERE attrelid = 'memes'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';

    EXECUTE format('ALTER TABLE memes DETACH PARTITION %s', default_part);
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF memes FOR VALUES FROM (%L) TO (%L)',
        name, lower_bound, upper_bound
    );
    EXECUTE format(
        'WITH moving AS (DELETE FROM %1$s WHERE created_at >= %2$L AND created_at < %3$L'
        ' RETURNING %4$s) INSERT INTO %5$I (%4$s) SELECT %4$s FROM moving',
        default_part, lower_bound, upper_bound, columns, name
    );
    GET DIAGNOSTICS moved = ROW_COUNT;
    EXECUTE format('ALTER TABLE memes ATTACH PARTITION %s DEFAULT', default_part);
    RETURN moved;
END $$;
