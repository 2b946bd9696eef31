-- Feedback (art. 10) and quality rectification tasks (art. 16) on datasets,
-- with working-day deadlines.
CREATE TABLE feedback (
    id                  TEXT PRIMARY KEY,
    dataset_id          TEXT NOT NULL REFERENCES datasets(id),
    reporter_id         TEXT NOT NULL REFERENCES users(id),
    kind                TEXT NOT NULL CHECK (kind IN ('error', 'omission', 'other', 'rectification')),
    description         TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('open', 'answered')),
    answer              TEXT,
    created_at          TEXT NOT NULL,
    due_at              TEXT NOT NULL,
    -- A provider's request for more time, and the authority's decision.
    extension_days      INTEGER,
    extension_reason    TEXT,
    extension_state     TEXT CHECK (extension_state IN ('requested', 'approved', 'refused')),
    answered_at         TEXT
);
CREATE INDEX feedback_by_dataset ON feedback(dataset_id);
