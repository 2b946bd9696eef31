-- Users and their hashed bearer tokens.
CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'provider', 'user', 'reviewer')),
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

-- Catalog entries (art. 14 fields) with their schema and budget.
CREATE TABLE datasets (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    owner_id            TEXT NOT NULL REFERENCES users(id),
    title               TEXT NOT NULL,
    description         TEXT NOT NULL,
    provider            TEXT NOT NULL,
    open_category       TEXT NOT NULL CHECK (open_category IN ('not_open', 'conditional', 'unconditional')),
    format              TEXT NOT NULL,
    data_type           TEXT NOT NULL,
    update_frequency    TEXT NOT NULL,
    schema_json         TEXT NOT NULL,
    epsilon_cap_units   INTEGER NOT NULL CHECK (epsilon_cap_units > 0),
    user_epsilon_units  INTEGER NOT NULL CHECK (user_epsilon_units > 0),
    created_at          TEXT NOT NULL
);

CREATE TABLE dataset_versions (
    dataset_id      TEXT NOT NULL REFERENCES datasets(id),
    version         TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    file_name       TEXT NOT NULL,
    bytes           INTEGER NOT NULL,
    source_format   TEXT NOT NULL,
    quality_json    TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (dataset_id, version)
);

-- A provider's approval for a user to run jobs on conditional data.
CREATE TABLE access_grants (
    dataset_id  TEXT NOT NULL REFERENCES datasets(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    granted_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (dataset_id, user_id)
);

CREATE TABLE jobs (
    id                      TEXT PRIMARY KEY,
    user_id                 TEXT NOT NULL REFERENCES users(id),
    manifest_json           TEXT NOT NULL,
    manifest_digest         TEXT NOT NULL,
    dataset_versions_json   TEXT NOT NULL,
    epsilon_units           INTEGER NOT NULL,
    delta_units             INTEGER NOT NULL,
    state                   TEXT NOT NULL CHECK (state IN ('queued', 'running', 'released', 'rejected', 'failed')),
    message                 TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL
);
CREATE INDEX jobs_by_user ON jobs(user_id);

-- The privacy ledger: one row per (job, dataset). Units are exact integers.
CREATE TABLE spends (
    job_id          TEXT NOT NULL REFERENCES jobs(id),
    dataset_id      TEXT NOT NULL REFERENCES datasets(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    epsilon_units   INTEGER NOT NULL CHECK (epsilon_units > 0),
    delta_units     INTEGER NOT NULL CHECK (delta_units >= 0),
    state           TEXT NOT NULL CHECK (state IN ('reserved', 'committed', 'refunded')),
    created_at      TEXT NOT NULL,
    PRIMARY KEY (job_id, dataset_id)
);
CREATE INDEX spends_by_dataset ON spends(dataset_id, state);

CREATE TABLE releases (
    job_id          TEXT PRIMARY KEY REFERENCES jobs(id),
    release_json    TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

-- Hash-chained audit log: hash = sha256(prev_hash || canonical entry).
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
