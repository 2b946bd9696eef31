//! Exact discrete Laplace noise: Sluice's integer CKS20 sampler against
//! OpenDP's, on one core and on all, measured in one run.
//! Run: `cargo bench -p sluice-dp --bench noise` (SLUICE_BENCH_RUNS
//! repetitions, default 7). Prints median and p90 per sample and the ratio
//! of medians.

use std::time::{Duration, Instant};

use opendp::domains::{AtomDomain, VectorDomain};
use opendp::measurements::make_laplace;
use opendp::metrics::L1Distance;
use sluice_dp::DiscreteLaplace;
use sluice_testkit::bench::{env_or, percentile};
use sluice_types::privacy::Epsilon;

fn per_sample(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e9 / n as f64
}

fn main() {
    let runs: usize = env_or("SLUICE_BENCH_RUNS", 7);
    println!("| sampler | cells | median ns/sample | p90 ns/sample | OpenDP / Sluice (medians) |");
    println!("|---|---|---|---|---|");
    for (epsilon, sensitivity) in [(1.0, 1u64), (0.1, 1), (1.0, 1000)] {
        let mechanism =
            DiscreteLaplace::calibrate(sensitivity, Epsilon::from_f64(epsilon).unwrap()).unwrap();
        let scale = mechanism.scale();
        // One core: OpenDP's measurement directly, and Sluice's sampler on a
        // vector below the parallel threshold.
        let opendp = make_laplace(
            VectorDomain::new(AtomDomain::<i64>::default()),
            L1Distance::<i64>::default(),
            scale,
            None,
        )
        .unwrap();
        let cells = 10_000;
        let input = vec![0i64; cells];
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let t = Instant::now();
            std::hint::black_box(mechanism.release(input.clone()).unwrap());
            ours.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(opendp.invoke(&input).unwrap());
            theirs.push(t.elapsed());
        }
        ours.sort();
        theirs.sort();
        let label = format!("scale {scale:.4} (ε {epsilon}, sensitivity {sensitivity}), one core");
        println!(
            "| Sluice, {label} | {cells} | {:.0} | {:.0} | {:.1}x |",
            per_sample(percentile(&ours, 0.5), cells),
            per_sample(percentile(&ours, 0.9), cells),
            percentile(&theirs, 0.5).as_secs_f64() / percentile(&ours, 0.5).as_secs_f64()
        );
        println!(
            "| OpenDP, {label} | {cells} | {:.0} | {:.0} | |",
            per_sample(percentile(&theirs, 0.5), cells),
            per_sample(percentile(&theirs, 0.9), cells),
        );
    }
    // The release path SQL uses for 1M cells (all cores).
    let mechanism = DiscreteLaplace::calibrate(1, Epsilon::from_f64(0.5).unwrap()).unwrap();
    let cells = 1_000_000;
    let mut all = Vec::new();
    for _ in 0..runs.min(5) {
        let t = Instant::now();
        std::hint::black_box(mechanism.release(vec![0; cells]).unwrap());
        all.push(t.elapsed());
    }
    all.sort();
    println!(
        "| Sluice, 1M cells, all cores | {cells} | {:.0} | {:.0} | |",
        per_sample(percentile(&all, 0.5), cells),
        per_sample(percentile(&all, 0.9), cells),
    );
}
