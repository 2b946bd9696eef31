-- An agreement's privacy budget (art. 21) is enforced by the ledger: every
-- job that names the agreement is charged its epsilon against it, in the
-- same savepoint as the per-dataset reservations.
ALTER TABLE agreements ADD COLUMN epsilon_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agreements ADD COLUMN epsilon_spent_units INTEGER NOT NULL DEFAULT 0;
-- Agreements made before this migration carry their budget in their terms.
-- Rounded to 1e-3 units first so that a float like 0.3 * 1e9 =
-- 299999999.99999994 becomes 300000000, then truncated: digits below one
-- unit round down, as for every grant.
UPDATE agreements
SET epsilon_units = CAST(ROUND(json_extract(terms_json, '$.terms.epsilon') * 1000000000, 3) AS INTEGER);

CREATE TABLE agreement_spends (
    job_id          TEXT NOT NULL REFERENCES jobs(id),
    agreement_id    TEXT NOT NULL REFERENCES agreements(id),
    epsilon_units   INTEGER NOT NULL CHECK (epsilon_units > 0),
    state           TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'refunded')),
    created_at      TEXT NOT NULL,
    PRIMARY KEY (job_id, agreement_id)
);

-- Jobs that named an agreement before this migration (one, as a string)
-- and whose spend is reserved or committed are charged to it, so that an
-- agreement's budget counts everything run under it.
INSERT INTO agreement_spends (job_id, agreement_id, epsilon_units, state, created_at)
SELECT j.id, a.id, j.epsilon_units, s.state, j.created_at
FROM jobs j
JOIN agreements a
  ON json_type(j.manifest_json, '$.agreement') = 'text'
 AND a.id = json_extract(j.manifest_json, '$.agreement')
 AND a.user_id = j.user_id
JOIN (SELECT job_id, MIN(state) AS state FROM spends
      WHERE state IN ('reserved', 'committed') GROUP BY job_id) s
  ON s.job_id = j.id
WHERE j.epsilon_units > 0;

UPDATE agreements
SET epsilon_spent_units = COALESCE(
    (SELECT SUM(epsilon_units) FROM agreement_spends
     WHERE agreement_id = agreements.id AND state != 'refunded'), 0);
