-- A job's state is one of seven, stored as such (sluice_types::JobState):
-- `awaiting_review` and `cancelled` were derived before (an undecided
-- review row; a failure whose message began "cancelled").
--
-- SQLite cannot change a CHECK constraint in place, and rebuilding the
-- table needs foreign keys off, which cannot be switched inside the
-- transaction a migration runs in. Allowing more values changes nothing
-- stored, so SQLite's documented procedure for such changes applies: edit
-- the table's definition in the schema, reload it (RESET), and make a
-- schema change of our own so that every other connection reloads it too.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(sql,
    'CHECK (state IN (''queued'', ''running'', ''released'', ''rejected'', ''failed''))',
    'CHECK (state IN (''queued'', ''awaiting_review'', ''running'', ''released'', ''rejected'', ''failed'', ''cancelled''))')
WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = RESET;
CREATE TABLE schema_reload (x INTEGER);
DROP TABLE schema_reload;

-- The edit must have taken: a job in the new state is accepted (and the
-- probe removed again; its user is checked at commit, by then gone).
PRAGMA defer_foreign_keys = ON;
INSERT INTO jobs (id, user_id, manifest_json, manifest_digest, dataset_versions_json,
                  epsilon_units, delta_units, state, created_at, updated_at)
VALUES ('__migration_probe', '__none', '{}', '', '[]', 0, 0, 'cancelled', '', '');
DELETE FROM jobs WHERE id = '__migration_probe';

UPDATE jobs SET state = 'awaiting_review'
WHERE state = 'queued'
  AND EXISTS (SELECT 1 FROM job_reviews r WHERE r.job_id = jobs.id AND r.outcome IS NULL);
UPDATE jobs SET state = 'cancelled'
WHERE state = 'failed' AND message LIKE 'cancelled%';
