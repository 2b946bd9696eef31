-- Running totals of reserved + committed epsilon, so that a reservation
-- checks two rows instead of summing every spend. Maintained in the same
-- transaction as the spends they summarise.
CREATE TABLE user_usage (
    dataset_id      TEXT NOT NULL REFERENCES datasets(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    epsilon_units   INTEGER NOT NULL CHECK (epsilon_units >= 0),
    delta_units     INTEGER NOT NULL CHECK (delta_units >= 0),
    PRIMARY KEY (dataset_id, user_id)
);

CREATE TABLE dataset_usage (
    dataset_id      TEXT PRIMARY KEY REFERENCES datasets(id),
    epsilon_units   INTEGER NOT NULL CHECK (epsilon_units >= 0),
    delta_units     INTEGER NOT NULL CHECK (delta_units >= 0)
);

INSERT INTO user_usage (dataset_id, user_id, epsilon_units, delta_units)
    SELECT dataset_id, user_id, SUM(epsilon_units), SUM(delta_units) FROM spends
    WHERE state IN ('reserved', 'committed') GROUP BY dataset_id, user_id;

INSERT INTO dataset_usage (dataset_id, epsilon_units, delta_units)
    SELECT dataset_id, SUM(epsilon_units), SUM(delta_units) FROM spends
    WHERE state IN ('reserved', 'committed') GROUP BY dataset_id;
