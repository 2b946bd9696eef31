-- Human review of jobs (issue #6): a provider may require one or two
-- distinct reviewers for jobs on a dataset.
ALTER TABLE datasets ADD COLUMN reviewers_required INTEGER NOT NULL DEFAULT 0
    CHECK (reviewers_required BETWEEN 0 AND 2);

-- A job held for review: what reviewers see (never data) and what runs once
-- approved. The job itself stays 'queued' with no budget reserved.
CREATE TABLE job_reviews (
    job_id          TEXT PRIMARY KEY REFERENCES jobs(id),
    required        INTEGER NOT NULL CHECK (required BETWEEN 1 AND 2),
    plan            TEXT NOT NULL,
    estimate_json   TEXT NOT NULL,
    task_json       TEXT NOT NULL,
    datasets_json   TEXT NOT NULL,
    outcome         TEXT CHECK (outcome IN ('approved', 'rejected')),
    created_at      TEXT NOT NULL
);

-- One decision per reviewer and job, bound to the manifest digest reviewed.
CREATE TABLE review_decisions (
    job_id          TEXT NOT NULL REFERENCES jobs(id),
    reviewer_id     TEXT NOT NULL REFERENCES users(id),
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    reason          TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (job_id, reviewer_id)
);
