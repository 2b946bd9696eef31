//! A per-block trimmed mean (sample-aggregate mode): the mean of column 0
//! after dropping the lowest and highest 10% of the block's values. The
//! host averages the blocks' answers and adds noise.

sluice_guest::map!(|block| {
    let mut values: Vec<f64> = block.column(0).collect();
    if values.is_empty() {
        return vec![0.0];
    }
    values.sort_by(f64::total_cmp);
    let cut = values.len() / 10;
    let kept = &values[cut..values.len() - cut];
    vec![kept.iter().sum::<f64>() / kept.len() as f64]
});
