-- Suspension (art. 38): a dataset is active, suspended (no new jobs, running
-- ones cancelled, budget frozen) or withdrawn (for good).
ALTER TABLE datasets ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'suspended', 'withdrawn'));
ALTER TABLE datasets ADD COLUMN status_reason TEXT;

-- Revocation (art. 34): a provider restricts a user's access to a dataset,
-- or the authority closes a user's access to all (dataset_id NULL). Listed
-- publicly.
CREATE TABLE revocations (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    dataset_id  TEXT REFERENCES datasets(id),
    decided_by  TEXT NOT NULL REFERENCES users(id),
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX revocations_by_user ON revocations(user_id);
