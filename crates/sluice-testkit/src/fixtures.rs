//! Dataset descriptors more than one test publishes.

/// A conditional table of synthetic people named `name`, one row each:
/// `pid` (the privacy unit, text), `age` in 0..=100, `income` in
/// 0..=1,000,000, `code` (text) and `sex` in {0, 1}. The outcome and timing
/// tests publish it as neighbouring datasets.
pub fn people(name: &str) -> String {
    PEOPLE.replace("NAME", name)
}

const PEOPLE: &str = r#"
[dataset]
name = "NAME"
title = "Neighbour test data"
description = "Synthetic people for the outcome and timing tests"
provider = "tests"
open_category = "conditional"
format = "csv"
data_type = "table"
update_frequency = "never"
epsilon_cap = 1000.0
user_epsilon = 1000.0

[schema]
max_rows_per_unit = 1
id_space = "person"

[[schema.columns]]
name = "pid"
role = "privacy_unit"
type = "text"

[[schema.columns]]
name = "age"
type = "int"
lower = 0
upper = 100

[[schema.columns]]
name = "income"
type = "int"
lower = 0
upper = 1000000

[[schema.columns]]
name = "code"
type = "text"

[[schema.columns]]
name = "sex"
type = "int"
domain = [0, 1]
"#;
