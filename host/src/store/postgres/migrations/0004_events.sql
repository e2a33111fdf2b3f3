-- Every node's events, so that a stream on any node carries all of its
-- tenant's and resumes there after any id. Ids come from one sequence and
-- are taken under a transaction lock held to commit, so they commit in
-- order: a reader that has seen id N has seen every event before it. Only
-- the newest events are kept (each node's writer deletes the older).
CREATE TABLE events (
    id bigint PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    at timestamptz NOT NULL,
    data bytea NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant, id);
CREATE SEQUENCE events_ids;
