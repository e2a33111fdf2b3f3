-- A write that does not change a tenant's run bytes (a claim, a status
-- change of the same size) leaves its run_usage row alone: before, every
-- update of runs upserted the row, which locked it until commit and made
-- every claim and outcome of a tenant, on every node, wait in line.
CREATE OR REPLACE FUNCTION run_usage_add(changes_finished bigint[], changes_unfinished bigint[], tenants text[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO run_usage AS usage (tenant, finished, unfinished)
    SELECT tenant, sum(finished), sum(unfinished)
    FROM unnest(tenants, changes_finished, changes_unfinished) AS change (tenant, finished, unfinished)
    GROUP BY tenant
    HAVING sum(finished) <> 0 OR sum(unfinished) <> 0
    ORDER BY tenant
    ON CONFLICT (tenant) DO UPDATE
    SET finished = usage.finished + excluded.finished, unfinished = usage.unfinished + excluded.unfinished;
$$;
