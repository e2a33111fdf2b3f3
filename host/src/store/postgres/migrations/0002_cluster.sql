-- Several daemons on one database: each node's lease, the scheduler's
-- leader lease, and which node owns each unfinished run and workflow run.

-- A node's lease, renewed while it lives; a node past expires_at is dead
-- and the leader takes over its runs. incarnation tells one process of a
-- node from the next (random per start): a process that finds another
-- incarnation in its row was replaced.
CREATE TABLE nodes (
    id text COLLATE "C" PRIMARY KEY,
    incarnation text NOT NULL,
    started_at timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    running_runs integer NOT NULL DEFAULT 0
);

-- The one node that plans fires and sweeps, while its lease lasts. A lost
-- row (the table is not WAL-logged, so a crash of the database empties it)
-- is a lease nobody holds.
CREATE UNLOGGED TABLE leader (
    name text PRIMARY KEY DEFAULT 'scheduler' CHECK (name = 'scheduler'),
    node text COLLATE "C" NOT NULL,
    incarnation text NOT NULL,
    elected_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The node that runs (or ran) each run, and drives each workflow run.
ALTER TABLE runs ADD COLUMN node text COLLATE "C";
CREATE INDEX runs_unfinished_by_node ON runs (node) WHERE NOT finished;
ALTER TABLE workflow_runs ADD COLUMN node text COLLATE "C";
CREATE INDEX workflow_runs_running_by_node ON workflow_runs (node) WHERE NOT finished;
