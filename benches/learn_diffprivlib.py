"""diffprivlib's DP logistic regression on the rows the Rust benchmark wrote.

Usage: learn_diffprivlib.py TRAIN.csv TEST.csv EPSILON BOUNDS RUNS
BOUNDS is lo:hi per feature, comma-separated (the declared bounds). Rows
are features then a 0/1 label. Loading is not timed; fit is.
"""
import sys
import time

import numpy as np
from diffprivlib.models import LogisticRegression


def main():
    train_path, test_path, epsilon, bounds, runs = sys.argv[1:6]
    epsilon, runs = float(epsilon), int(runs)
    lo_hi = [tuple(map(float, b.split(":"))) for b in bounds.split(",")]
    train = np.loadtxt(train_path, delimiter=",")
    test = np.loadtxt(test_path, delimiter=",")
    lo = np.array([b[0] for b in lo_hi])
    hi = np.array([b[1] for b in lo_hi])
    centre, half = (lo + hi) / 2, (hi - lo) / 2

    def scale(x):
        # The same scaling to [-1, 1] from declared bounds as Sluice.
        return (np.clip(x, lo, hi) - centre) / half

    x, y = scale(train[:, :-1]), train[:, -1].astype(int)
    xt, yt = scale(test[:, :-1]), test[:, -1].astype(int)
    data_norm = float(np.sqrt(len(lo)))
    times, accs = [], []
    for _ in range(runs):
        model = LogisticRegression(epsilon=epsilon, data_norm=data_norm)
        t = time.perf_counter()
        model.fit(x, y)
        times.append(time.perf_counter() - t)
        accs.append(float((model.predict(xt) == yt).mean()))
    times.sort()
    p90 = times[round((len(times) - 1) * 0.9)]
    print(
        f"diffprivlib LogisticRegression eps={epsilon} (pure) median "
        f"{times[len(times) // 2] * 1e3:8.1f} ms  p90 {p90 * 1e3:8.1f} ms   "
        f"accuracy {np.mean(accs):.4f}"
    )


if __name__ == "__main__":
    main()
