-- Timing mitigation (docs/threat-model.md, "Timing"): a running job's
-- result becomes visible only at a time fixed from data-independent inputs,
-- its due time, which doubles each time the job is not done by it.
ALTER TABLE jobs ADD COLUMN due_at TEXT;

-- Each principal (a user under a set of data-use agreements) keeps the
-- level its predictions have reached: a misprediction doubles the
-- principal's predictions for good, which bounds what timing can reveal
-- over all of its jobs.
CREATE TABLE timing_levels (
    user_id         TEXT NOT NULL REFERENCES users(id),
    principal       TEXT NOT NULL,
    level           INTEGER NOT NULL CHECK (level >= 0),
    mispredictions  INTEGER NOT NULL DEFAULT 0 CHECK (mispredictions >= 0),
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (user_id, principal)
);

-- The least epsilon one job under an agreement spends (the provider's
-- choice; 0.001 by default): it bounds how many jobs a budget buys, and
-- with them any residual side channel.
ALTER TABLE agreements ADD COLUMN min_epsilon_units INTEGER NOT NULL DEFAULT 1000000
    CHECK (min_epsilon_units > 0);
