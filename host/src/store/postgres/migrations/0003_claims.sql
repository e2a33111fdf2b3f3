-- One queue for the whole cluster: a queued run belongs to no node until
-- one claims it (node set, in a transaction that skips rows others lock).
-- A workflow's step runs are the exception: they stay with the node that
-- drives their workflow run (step). The columns are what claims order
-- and filter by: the run's priority (0 low .. 3 critical), when it is due
-- (its scheduled_at: a retry's is after its backoff), and whether it
-- waits for its job's other runs.
ALTER TABLE runs ADD COLUMN priority smallint NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN due_at timestamptz;
ALTER TABLE runs ADD COLUMN exclusive boolean NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN step boolean NOT NULL DEFAULT false;
UPDATE runs SET due_at = coalesce(id_time, now()) WHERE NOT finished;

-- Runs waiting for a node, best first.
CREATE INDEX runs_claimable ON runs (priority DESC, due_at, job_id, id)
    WHERE status = 'queued' AND node IS NULL;
-- Runs a node has (claimed, running): what counts against a tenant's
-- concurrent_runs across the cluster and keeps an exclusive run waiting.
CREATE INDEX runs_claimed ON runs (tenant, job_id) WHERE NOT finished AND node IS NOT NULL;
-- Unfinished runs per job: the overlap policy's input.
CREATE INDEX runs_unfinished_by_job ON runs (tenant, job_id) WHERE NOT finished;

-- New runs waiting for a node wake every node's claims.
CREATE FUNCTION runs_claimable_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM added WHERE status = 'queued' AND node IS NULL) THEN
        PERFORM pg_notify('sandcron_runs', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_claimable AFTER INSERT ON runs REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION runs_claimable_notify();
