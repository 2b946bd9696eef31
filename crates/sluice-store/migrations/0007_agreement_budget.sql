-- An agreement's privacy budget (art. 21) is enforced by the ledger: every
-- job that names the agreement is charged its epsilon against it, in the
-- same savepoint as the per-dataset reservations.
ALTER TABLE agreements ADD COLUMN epsilon_units INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agreements ADD COLUMN epsilon_spent_units INTEGER NOT NULL DEFAULT 0;
-- Agreements made before this migration carry their budget in their terms.
UPDATE agreements
SET epsilon_units = CAST(ROUND(json_extract(terms_json, '$.terms.epsilon') * 1000000000) AS INTEGER);

CREATE TABLE agreement_spends (
    job_id          TEXT NOT NULL REFERENCES jobs(id),
    agreement_id    TEXT NOT NULL REFERENCES agreements(id),
    epsilon_units   INTEGER NOT NULL CHECK (epsilon_units > 0),
    state           TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'refunded')),
    created_at      TEXT NOT NULL,
    PRIMARY KEY (job_id, agreement_id)
);
