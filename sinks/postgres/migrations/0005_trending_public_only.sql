-- Only public memes trend. The trending worker drops a meme from its sets when it is deleted,
-- fails to render, or moderation holds it back (flagged for review, rejected); the fallback
-- view now agrees: only memes whose status is 'rendered' are ranked.
DROP MATERIALIZED VIEW trending_daily;
CREATE MATERIALIZED VIEW trending_daily AS
SELECT
    (v.updated_at AT TIME ZONE 'UTC')::date AS day,
    v.meme_id,
    sum(v.value)::double precision AS score,
    count(*)::bigint AS votes
FROM votes v
JOIN memes m ON m.id = v.meme_id AND m.created_at = v.meme_created_at
WHERE m.status = 'rendered'
GROUP BY 1, 2
WITH DATA;
CREATE UNIQUE INDEX trending_daily_key ON trending_daily (day, meme_id);
CREATE INDEX trending_daily_rank_idx ON trending_daily (day, score DESC);
