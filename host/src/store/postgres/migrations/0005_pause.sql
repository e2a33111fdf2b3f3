-- Whether the cluster's scheduler is paused (POST /v1/scheduler/pause on
-- any node pauses every node's), kept over restarts of the nodes.
CREATE TABLE scheduler_state (
    name text PRIMARY KEY DEFAULT 'scheduler' CHECK (name = 'scheduler'),
    paused boolean NOT NULL
);
