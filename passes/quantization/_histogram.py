"""Streamed statistics of one tensor for calibration, and the ranges calibration methods pick.

`TensorStats` keeps the exact min and max and a 4096-bin histogram over [-R, R). When a value
falls outside, R doubles and adjacent bin pairs merge (exact: the old range is the middle half of
the new one), so memory is fixed whatever the number of samples and no count is ever lost or
re-estimated (32 KiB per tensor). Non-finite values are counted apart and never move the range.

Range methods (`pick_range`), each returning (lo, hi) with lo <= 0 <= hi:
- minmax: the observed min and max;
- percentile: the p-th percentile of |x| (symmetric) or the (100-p)-th and p-th of x;
- entropy: the threshold T over |x| minimizing KL(P || Q) between the clipped distribution and its
  quantization to `levels` bins (TensorRT's method; exact zeros left out), then [max(min, -T), min(max, T)];
- mse: the scale factor a in (0, 1] of the observed range minimizing the expected squared error
  (clipping error of each bin's mass plus step**2 / 12 inside the range)."""

from __future__ import annotations

import numpy as np

BINS = 4096
METHODS = ("minmax", "percentile", "entropy", "mse")


class TensorStats:
    def __init__(self) -> None:
        self.min = np.inf
        self.max = -np.inf
        self.radius = 0.0
        self.counts = np.zeros(BINS, np.float64)
        self.nonfinite = 0
        self.zeros = 0
        self.n = 0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).reshape(-1)
        finite = np.isfinite(x)
        if not finite.all():
            self.nonfinite += int(x.size - np.count_nonzero(finite))
            x = x[finite]
        if x.size == 0:
            return
        self.n += x.size
        self.zeros += int(x.size - np.count_nonzero(x))
        lo, hi = float(x.min()), float(x.max())
        self.min, self.max = min(self.min, lo), max(self.max, hi)
        amax = max(-lo, hi)
        if self.radius == 0.0:
            self.radius = float(2.0 ** np.ceil(np.log2(amax))) if amax > 0 else 0.0
            if self.radius and amax >= self.radius:
                self.radius *= 2
        while self.radius and amax >= self.radius:
            self._double()
        if self.radius == 0.0:  # only zeros so far: they sit in the two middle bins' boundary
            self.counts[BINS // 2] += x.size
            return
        h, _ = np.histogram(x, bins=BINS, range=(-self.radius, self.radius))
        self.counts += h

    def _double(self) -> None:
        merged = self.counts.reshape(BINS // 2, 2).sum(1)
        self.counts = np.zeros(BINS, np.float64)
        self.counts[BINS // 4: 3 * BINS // 4] = merged
        self.radius *= 2

    @property
    def empty(self) -> bool:
        return self.n == 0

    def edges(self) -> np.ndarray:
        return np.linspace(-self.radius, self.radius, BINS + 1)

    def folded(self) -> np.ndarray:
        """Histogram of |x| over [0, R) in BINS // 2 bins (bins are symmetric about 0)."""
        half = BINS // 2
        return self.counts[half:] + self.counts[:half][::-1]


def pick_range(st: TensorStats, method: str, symmetric: bool, levels: int,
               percentile: float = 99.99) -> tuple[float, float]:
    """(lo, hi), lo <= 0 <= hi, for quantizing the tensor to `levels` steps (256 for 8 bits)."""
    if st.empty:
        return 0.0, 0.0
    lo, hi = min(st.min, 0.0), max(st.max, 0.0)
    if method == "minmax":
        pass
    elif method == "percentile":
        lo, hi = _percentile(st, symmetric, percentile, lo, hi)
    elif method == "entropy":
        t = _entropy_threshold(st, min(levels // 2, BINS // 4))
        lo, hi = max(lo, -t), min(hi, t)
    elif method == "mse":
        a = _mse_factor(st, symmetric, levels, lo, hi)
        lo, hi = lo * a, hi * a
    else:
        raise ValueError(f"unknown calibration method '{method}' (one of {', '.join(METHODS)})")
    if symmetric:
        m = max(-lo, hi)
        return -m, m
    return lo, hi


def _percentile(st: TensorStats, symmetric: bool, p: float, lo: float, hi: float) -> tuple[float, float]:
    q = p / 100.0
    if symmetric:
        f = st.folded()
        cdf = np.cumsum(f) / f.sum()
        i = int(np.searchsorted(cdf, q))
        m = min((i + 1) * st.radius / (BINS // 2), max(-lo, hi))
        return -m, m
    cdf = np.cumsum(st.counts) / st.counts.sum()
    e = st.edges()
    i_hi = int(np.searchsorted(cdf, q))
    i_lo = int(np.searchsorted(cdf, 1.0 - q))
    return max(lo, min(0.0, float(e[i_lo]))), min(hi, max(0.0, float(e[min(i_hi + 1, BINS)])))


def _entropy_threshold(st: TensorStats, nq: int) -> float:
    """TensorRT-style KL calibration over the |x| histogram (thresholds at bin edges i >= nq).
    Exact zeros (half of a ReLU's output) are left out: quantization keeps them exact, and their
    spike in the first bin would otherwise dominate the divergence."""
    f = st.folded()
    f[0] = max(0.0, f[0] - st.zeros)
    nb = len(f)
    width = st.radius / nb
    last = int(np.nonzero(f)[0].max()) + 1 if f.any() else 1
    if last <= nq:
        return last * width
    best, best_i = np.inf, last
    for i in range(nq, last + 1, max(1, (last - nq) // 256)):
        p = f[:i].copy()
        p[i - 1] += f[i:].sum()  # clipped mass on the last bin
        # Q: the unclipped first i bins merged into nq groups, each group's mass spread over the
        # bins where P is nonzero (so the bin holding the clipped mass gets its share)
        groups = np.array_split(np.arange(i), nq)
        q = np.zeros(i)
        src = f[:i]
        for g in groups:
            nz = p[g] > 0
            if nz.any():
                q[g[nz]] = src[g].sum() / nz.sum()
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        pn, qn = _smooth(p / ps), _smooth(q / qs)
        mask = pn > 0
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / qn[mask])))
        if kl < best:
            best, best_i = kl, i
    return best_i * width


def _smooth(d: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Move eps of mass onto every empty bin (taken evenly from the others), so that KL is finite."""
    zero = d == 0
    nz = d.size - int(zero.sum())
    if nz == 0 or not zero.any():
        return d
    eps = min(eps, 0.5 * float(d[~zero].min()) * nz / zero.sum())  # no bin goes to 0 or below
    return d + eps * zero - (eps * zero.sum() / nz) * ~zero


def _mse_factor(st: TensorStats, symmetric: bool, levels: int, lo: float, hi: float) -> float:
    e = st.edges()
    c = (e[:-1] + e[1:]) / 2
    w = st.counts
    if symmetric:
        m = max(-lo, hi)
        lo, hi = -m, m
    best, best_a = np.inf, 1.0
    for a in np.linspace(1.0, 0.05, 96):
        lo_a, hi_a = lo * a, hi * a
        step = (hi_a - lo_a) / (levels - 1) if hi_a > lo_a else 0.0
        clip = np.where(c > hi_a, c - hi_a, np.where(c < lo_a, lo_a - c, 0.0))
        inside = (c >= lo_a) & (c <= hi_a)
        err = float(np.sum(w * clip**2) + np.sum(w[inside]) * step**2 / 12)
        if err < best:
            best, best_a = err, float(a)
    return best_a
