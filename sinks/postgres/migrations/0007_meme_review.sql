-- Review of the memes moderation flagged (api/routes/review.py): an admin approves one (status
-- 'rendered': public, may trend) or rejects it (status 'rejected', images removed). Who decided,
-- when, what and why is kept on the row; the model's evidence (moderation, moderation_score,
-- moderation_reason) stays as the render worker wrote it. A reviewed row is the reviewer's: a
-- replayed render no longer overwrites its status (sinks/postgres/memes.py, record_render).

ALTER TABLE memes
    ADD COLUMN IF NOT EXISTS reviewed_by text,
    ADD COLUMN IF NOT EXISTS reviewed_at timestamptz,
    ADD COLUMN IF NOT EXISTS review_decision text
        CHECK (review_decision IN ('approved', 'rejected')),
    ADD COLUMN IF NOT EXISTS review_note text;
