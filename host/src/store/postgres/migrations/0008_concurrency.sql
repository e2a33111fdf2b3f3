-- A run's concurrency group (its job's `policy.concurrency` when it was
-- queued): a node claims a run only while fewer than the group's limit of
-- its runs are claimed across the cluster.
ALTER TABLE runs ADD COLUMN concurrency_key text;
ALTER TABLE runs ADD COLUMN concurrency_limit integer;
CREATE INDEX runs_concurrency ON runs (tenant, concurrency_key)
    WHERE concurrency_key IS NOT NULL AND NOT finished;
