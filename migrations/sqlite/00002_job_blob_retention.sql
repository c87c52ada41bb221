-- Retention: Jobs.ExpireJobs clears a finished job's blob keys and records
-- when in blobs_expired_at (TEXT, the fixed-width UTC form); the row stays.
-- The indexes serve the sweep's scan and the reference checks made before
-- a blob is deleted.

-- +goose Up
ALTER TABLE jobs ADD COLUMN blobs_expired_at TEXT;

-- Finished jobs that still hold blobs, oldest first.
CREATE INDEX jobs_unexpired_finished_idx ON jobs (finished_at)
    WHERE finished_at IS NOT NULL AND blobs_expired_at IS NULL;

-- Who references a blob. Expired rows hold '' and stay out of the indexes;
-- queries repeat the "<> ''" so that the planner may use them.
CREATE INDEX jobs_input_blob_idx ON jobs (input_blob) WHERE input_blob <> '';
CREATE INDEX jobs_result_blob_idx ON jobs (result_blob) WHERE result_blob <> '';
CREATE INDEX key_sets_blob_key_idx ON key_sets (blob_key);

-- +goose Down
DROP INDEX key_sets_blob_key_idx;
DROP INDEX jobs_result_blob_idx;
DROP INDEX jobs_input_blob_idx;
DROP INDEX jobs_unexpired_finished_idx;
ALTER TABLE jobs DROP COLUMN blobs_expired_at;
