-- The store's tables. Every key starts with the tenant. Records are the
-- bytes sled keeps (jobs' and runs' compact binary, the others JSON); the
-- columns beside them are what queries select, order and lock by. Keys
-- and names sort bytewise (COLLATE "C"), as sled's keys do.

CREATE TABLE tenants (
    name text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE tokens (
    hash text COLLATE "C" PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    UNIQUE (tenant, id)
);

CREATE TABLE secrets (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- Component bytes, once per digest whoever uploaded them; a digest goes
-- with the last version using it.
CREATE TABLE plugin_bytes (
    digest text COLLATE "C" PRIMARY KEY,
    bytes bytea NOT NULL
);

CREATE TABLE plugin_versions (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    digest text COLLATE "C" NOT NULL REFERENCES plugin_bytes (digest),
    size bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
CREATE INDEX plugin_versions_digest ON plugin_versions (digest);

-- next_fire_at is the due index: set while the job is enabled and has a
-- next fire, in milliseconds as the scheduler plans them.
CREATE TABLE jobs (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    next_fire_at timestamptz,
    run_at_start boolean NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, name)
);
CREATE INDEX jobs_due ON jobs (next_fire_at, tenant, id) WHERE next_fire_at IS NOT NULL;
CREATE INDEX jobs_starting ON jobs (tenant, id) WHERE run_at_start;

-- bytes: what the run counts in its tenant's run history (run_usage);
-- id_time: the time in its id (when it was queued or due), which
-- retention goes by; null when the id has none.
CREATE TABLE runs (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    job_id text COLLATE "C" NOT NULL,
    status text NOT NULL,
    finished boolean NOT NULL,
    bytes bigint NOT NULL,
    id_time timestamptz,
    record bytea NOT NULL,
    output bytea,
    log bytea,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX runs_by_job ON runs (tenant, job_id, id);
CREATE INDEX runs_unfinished ON runs (tenant, id) WHERE NOT finished;
CREATE INDEX runs_finished_by_time ON runs (id_time) WHERE finished;

-- Each tenant's run bytes, kept by the triggers below in the statement
-- that changes them.
CREATE TABLE run_usage (
    tenant text COLLATE "C" PRIMARY KEY,
    finished bigint NOT NULL DEFAULT 0,
    unfinished bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION run_usage_add(changes_finished bigint[], changes_unfinished bigint[], tenants text[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO run_usage AS usage (tenant, finished, unfinished)
    SELECT tenant, sum(finished), sum(unfinished)
    FROM unnest(tenants, changes_finished, changes_unfinished) AS change (tenant, finished, unfinished)
    GROUP BY tenant
    ORDER BY tenant
    ON CONFLICT (tenant) DO UPDATE
    SET finished = usage.finished + excluded.finished, unfinished = usage.unfinished + excluded.unfinished;
$$;

CREATE FUNCTION runs_counted_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM run_usage_add(
        array_agg(CASE WHEN finished THEN bytes ELSE 0 END),
        array_agg(CASE WHEN finished THEN 0 ELSE bytes END),
        array_agg(tenant::text))
    FROM added;
    RETURN NULL;
END $$;

CREATE FUNCTION runs_counted_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM run_usage_add(
        array_agg(CASE WHEN finished THEN -bytes ELSE 0 END),
        array_agg(CASE WHEN finished THEN 0 ELSE -bytes END),
        array_agg(tenant::text))
    FROM removed;
    RETURN NULL;
END $$;

CREATE FUNCTION runs_counted_again() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM run_usage_add(
        array_agg(change.finished), array_agg(change.unfinished), array_agg(change.tenant::text))
    FROM (
        SELECT tenant, CASE WHEN finished THEN bytes ELSE 0 END AS finished,
               CASE WHEN finished THEN 0 ELSE bytes END AS unfinished
        FROM added
        UNION ALL
        SELECT tenant, CASE WHEN finished THEN -bytes ELSE 0 END,
               CASE WHEN finished THEN 0 ELSE -bytes END
        FROM removed
    ) AS change;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_inserted AFTER INSERT ON runs REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION runs_counted_in();
CREATE TRIGGER runs_updated AFTER UPDATE ON runs REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION runs_counted_again();
CREATE TRIGGER runs_deleted AFTER DELETE ON runs REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION runs_counted_out();

CREATE TABLE kv (
    tenant text COLLATE "C" NOT NULL,
    job_id text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tenant, job_id, key)
);

-- Each tenant's kv bytes (keys and values), kept by the triggers below.
CREATE TABLE kv_usage (
    tenant text COLLATE "C" PRIMARY KEY,
    bytes bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION kv_usage_add(changes bigint[], tenants text[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO kv_usage AS usage (tenant, bytes)
    SELECT tenant, sum(bytes) FROM unnest(tenants, changes) AS change (tenant, bytes)
    GROUP BY tenant
    ORDER BY tenant
    ON CONFLICT (tenant) DO UPDATE SET bytes = usage.bytes + excluded.bytes;
$$;

CREATE FUNCTION kv_counted_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kv_usage_add(array_agg(octet_length(key) + octet_length(value)::bigint), array_agg(tenant::text)) FROM added;
    RETURN NULL;
END $$;

CREATE FUNCTION kv_counted_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kv_usage_add(array_agg(-(octet_length(key) + octet_length(value))::bigint), array_agg(tenant::text)) FROM removed;
    RETURN NULL;
END $$;

CREATE FUNCTION kv_counted_again() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM kv_usage_add(array_agg(change.bytes), array_agg(change.tenant::text))
    FROM (
        SELECT tenant, (octet_length(key) + octet_length(value))::bigint AS bytes FROM added
        UNION ALL
        SELECT tenant, -(octet_length(key) + octet_length(value))::bigint FROM removed
    ) AS change;
    RETURN NULL;
END $$;

CREATE TRIGGER kv_inserted AFTER INSERT ON kv REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION kv_counted_in();
CREATE TRIGGER kv_updated AFTER UPDATE ON kv REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION kv_counted_again();
CREATE TRIGGER kv_deleted AFTER DELETE ON kv REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION kv_counted_out();

CREATE TABLE workflows (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE workflow_runs (
    tenant text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    finished boolean NOT NULL,
    id_time timestamptz,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (tenant, workflow, id);
CREATE INDEX workflow_runs_running ON workflow_runs (tenant, id) WHERE NOT finished;

-- A dependent job's join (after_jobs): what its awaited jobs' runs did.
CREATE TABLE joins (
    tenant text COLLATE "C" NOT NULL,
    job_id text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (tenant, job_id)
);
