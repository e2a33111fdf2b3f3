-- A recorded run's tape (the answers of its host calls, to replay it);
-- its bytes count in the run's `bytes` with its record, output and log.
ALTER TABLE runs ADD COLUMN tape bytea;
