//! Per-person statistics with custom logic (map mode): for each person,
//! [mean of column 0 over their rows, 1 if any row's column 1 exceeds 60].
//! Summed over persons by the host: the total of per-person means and the
//! number of persons with such a row.

sluice_guest::map!(|unit| {
    let values: Vec<f64> = unit.column(0).collect();
    let mean = if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    };
    let any_over_60 = unit.column(1).any(|v| v > 60.0);
    vec![mean, if any_over_60 { 1.0 } else { 0.0 }]
});
