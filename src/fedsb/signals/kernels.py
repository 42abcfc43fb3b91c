"""Compiled inner loops (numba) for the steps numpy cannot vectorise without large temporaries.

All are per-sample sums over a handful of neighbours (pulse taps, multipath taps or paths).
In numpy they cost 2 gathers and a multiply-add per neighbour over (N, L) arrays; compiled,
each output sample is one short loop. Results match the numpy formulation to float32
rounding, and the tests check them against direct double-loop references. ``cache=True``
stores the machine code next to this file (or in numba's user cache), so only the first run
ever compiles.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def pulse_train(symbols, t, table, param_idx, out):  # pragma: no cover - compiled
    """out[i, k] = sum_j table[p_i, f, j] * symbols[i, m0 - span + 1 + j].

    t[i, k] is the symbol time of the sample, m0 = floor(t), f = round(frac(t) * oversample).
    """
    n, length = out.shape
    taps = table.shape[2]
    span = taps // 2
    oversample = table.shape[1] - 1
    for i in range(n):
        tab = table[param_idx[i]]
        for k in range(length):
            m0 = int(t[i, k])
            f = int((t[i, k] - m0) * oversample + 0.5)
            first = m0 - span + 1
            acc = symbols[i, first] * tab[f, 0]
            for j in range(1, taps):
                acc += symbols[i, first + j] * tab[f, j]
            out[i, k] = acc


@njit(cache=True, nogil=True)
def phase_train(symbols, t, table, param_idx, out):  # pragma: no cover - compiled
    """Like ``pulse_train``, for a phase pulse rising 0 -> 1.

    Symbols that left the table's window on the old side have fully contributed and are added
    by a running sum.
    """
    n, length = out.shape
    taps = table.shape[2]
    span = taps // 2
    oversample = table.shape[1] - 1
    for i in range(n):
        tab = table[param_idx[i]]
        settled = 0.0
        summed = 0  # symbols [0, summed) are in `settled`
        for k in range(length):
            m0 = int(t[i, k])
            f = int((t[i, k] - m0) * oversample + 0.5)
            first = m0 - span + 1
            while summed < first:
                settled += symbols[i, summed]
                summed += 1
            acc = settled
            for j in range(taps):
                acc += symbols[i, first + j] * tab[f, j]
            out[i, k] = acc


@njit(cache=True, nogil=True)
def path_delay_line(x, knots, spacing, delays, scatter, los, faded, out):  # pragma: no cover
    """out[i, k] = sum_p g[i, p, k] * x[i, pad - delays[i, p] + k], paths at any delay.

    Path p of record i has the integer delay ``delays[i, p]`` (a tapped delay line: p), the
    amplitude ``scatter[i, p]`` (0: unused) and gains interpolated linearly between ``knots``
    (every ``spacing`` samples); the line-of-sight term ``los[i]`` has delay 0. Records with
    ``faded[i]`` False pass through.
    """
    n, length = out.shape
    paths = knots.shape[1]
    pad = x.shape[1] - length
    inv = 1.0 / spacing
    for i in range(n):
        if not faded[i]:
            for k in range(length):
                out[i, k] = x[i, pad + k]
            continue
        for k in range(length):
            q = k // spacing
            w = np.float32((k - q * spacing) * inv)
            acc = los[i] * x[i, pad + k]
            for p in range(paths):
                s = scatter[i, p]
                if s == 0.0:
                    continue
                g = (knots[i, p, q] * (1 - w) + knots[i, p, q + 1] * w) * s
                acc += g * x[i, pad - delays[i, p] + k]
            out[i, k] = acc
