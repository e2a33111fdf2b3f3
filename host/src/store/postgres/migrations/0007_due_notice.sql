-- A notice of new claimable runs says when the earliest of them is due
-- (milliseconds since the epoch), so nodes claim a fire recorded ahead of
-- its instant at that instant instead of at their next look.
CREATE OR REPLACE FUNCTION runs_claimable_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    due timestamptz;
BEGIN
    SELECT min(due_at) INTO due FROM added WHERE status = 'queued' AND node IS NULL;
    IF due IS NOT NULL THEN
        -- Rounded up: a wake-up a fraction early would find nothing due.
        PERFORM pg_notify('sandcron_runs', ceil(extract(epoch FROM due) * 1000)::bigint::text);
    ELSIF EXISTS (SELECT 1 FROM added WHERE status = 'queued' AND node IS NULL) THEN
        PERFORM pg_notify('sandcron_runs', '');
    END IF;
    RETURN NULL;
END $$;

-- The scheduler's state has its row from the start: a schedule fire locks
-- it (FOR SHARE) so that a pause through another node and the fire are
-- ordered.
INSERT INTO scheduler_state (name, paused) VALUES ('scheduler', false) ON CONFLICT (name) DO NOTHING;
