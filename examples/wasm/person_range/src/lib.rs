//! The spread of each person's values (map mode): max - min of column 0
//! over their rows (0 for one row). Summed over persons by the host.

sluice_guest::map!(|unit| {
    let mut it = unit.column(0);
    let Some(first) = it.next() else {
        return vec![0.0];
    };
    let (lo, hi) = it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v)));
    vec![hi - lo]
});
