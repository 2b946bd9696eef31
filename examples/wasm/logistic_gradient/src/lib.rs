//! A custom gradient for DP training: logistic regression with a hinge on
//! the confident side. Each row is [1, scaled features.., label]; the unit's
//! gradient is the mean over its rows of (p - y) x, except that rows the
//! model already classifies with margin (|p - y| < 0.05) contribute nothing
//! (the kind of per-example logic a built-in learner does not offer). The
//! host clips the result and adds noise; nothing here can leak more.

fn unit_gradient(unit: &sluice_guest::Unit, params: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; params.len()];
    let rows: Vec<&[f64]> = unit.rows().collect();
    if rows.is_empty() || unit.columns != params.len() + 1 {
        return g;
    }
    for row in &rows {
        let (x, y) = row.split_at(params.len());
        let z: f64 = params.iter().zip(x).map(|(w, v)| w * v).sum();
        let residual = 1.0 / (1.0 + (-z).exp()) - y[0];
        if residual.abs() < 0.05 {
            continue;
        }
        for (gi, xi) in g.iter_mut().zip(x) {
            *gi += residual * xi / rows.len() as f64;
        }
    }
    g
}

sluice_guest::gradient!(unit_gradient);
