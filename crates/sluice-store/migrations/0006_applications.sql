-- Conditional access (art. 20-21): applications, the provider's decision
-- within 10 working days, and the data-use agreement an approval creates.
CREATE TABLE applications (
    id              TEXT PRIMARY KEY,
    applicant_id    TEXT NOT NULL REFERENCES users(id),
    provider_id     TEXT NOT NULL REFERENCES users(id),
    body_json       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('submitted', 'approved', 'refused')),
    decision_json   TEXT,
    agreement_id    TEXT,
    created_at      TEXT NOT NULL,
    due_at          TEXT NOT NULL,
    decided_at      TEXT
);

CREATE TABLE agreements (
    id              TEXT PRIMARY KEY,
    application_id  TEXT NOT NULL REFERENCES applications(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    provider_id     TEXT NOT NULL REFERENCES users(id),
    -- Canonical JSON of the terms; content_hash is its SHA-256.
    terms_json      TEXT NOT NULL,
    content_hash    TEXT NOT NULL,
    period_start    TEXT NOT NULL,
    period_end      TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE TABLE agreement_datasets (
    agreement_id    TEXT NOT NULL REFERENCES agreements(id),
    dataset_id      TEXT NOT NULL REFERENCES datasets(id),
    PRIMARY KEY (agreement_id, dataset_id)
);
