-- Moderation and sentiment (issue 7, domain/ai). A meme moderation refused is `rejected` (its
-- reason in `error`, no images stored); one between the flag and reject thresholds is
-- `flagged`: rendered and stored, held for review. Every caption's sentiment is stored with
-- its meme. Constraints on the partitioned parent apply to every partition.

ALTER TABLE memes DROP CONSTRAINT IF EXISTS memes_status_check;
ALTER TABLE memes ADD CONSTRAINT memes_status_check
    CHECK (status IN ('pending', 'rendered', 'failed', 'deleted', 'rejected', 'flagged'));

ALTER TABLE memes
    ADD COLUMN IF NOT EXISTS sentiment text
        CHECK (sentiment IN ('negative', 'neutral', 'positive')),
    ADD COLUMN IF NOT EXISTS sentiment_score real,
    ADD COLUMN IF NOT EXISTS moderation text CHECK (moderation IN ('ok', 'flagged', 'rejected')),
    ADD COLUMN IF NOT EXISTS moderation_score real,
    ADD COLUMN IF NOT EXISTS moderation_reason text;

-- The review queue: flagged memes, newest first.
CREATE INDEX IF NOT EXISTS memes_flagged_idx ON memes (created_at DESC) WHERE status = 'flagged';
