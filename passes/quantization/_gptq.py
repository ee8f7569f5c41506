"""GPTQ (Frantar et al., 2022): block quantization of a weight W [K, N] that minimizes the
error of the layer's output on calibration inputs X rather than of the weight itself.

    minimize || X W - X Q ||^2   with Q on the MatMulNBits grid (per output column, per block along K)

Rows of W are quantized in order k = 0 .. K-1; the error each row leaves is spread over the rows
not yet quantized through the inverse of H = X^T X (its upper Cholesky factor), so later rows
absorb what earlier ones lost where the inputs are correlated. A block's grid (scale, zero point)
is chosen from the block's already-updated rows when the block starts (`_nbits.block_params`).
Updates are applied lazily per `lazy` rows (the paper's batching). With H = identity (uncorrelated
inputs) this is round-to-nearest.

Works in float64 for H and its factor, float32 for the weights. Output: the unpacked integers
`_nbits.pack` takes, as `quantize_blocks` returns them."""

from __future__ import annotations

import numpy as np

from edgec.passes.quantization._nbits import _check, block_params, quantize_to

DAMP = 0.01  # H += DAMP * mean(diag H) * I: keeps the inverse stable (the paper's default)


def _inverse_factor(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor U of H^-1 (H^-1 = U^T U), damped more until H is positive definite."""
    h = h.copy()
    dead = np.diag(h) <= 0  # inputs always zero in calibration: nothing to spread their error over
    h[dead, dead] = 1.0
    mean = float(np.mean(np.diag(h)))
    for _ in range(6):
        try:
            hd = h + damp * mean * np.eye(len(h))
            return np.linalg.cholesky(np.linalg.inv(hd)).T
        except np.linalg.LinAlgError:
            damp *= 10
    raise np.linalg.LinAlgError("GPTQ: the calibration Gram matrix stays singular after damping")


def gptq_blocks(w: np.ndarray, gram: np.ndarray, bits: int, block_size: int, symmetric: bool,
                damp: float = DAMP, lazy: int = 128):
    """W [K, N] float, gram = X^T X [K, K] -> (q uint8 [N, k_blocks * block_size], zp uint8
    [N, k_blocks], scale float32 [N, k_blocks]), as `_nbits.quantize_blocks`."""
    _check(bits, block_size)
    k, n = w.shape
    kb = -(-k // block_size)
    kp = kb * block_size
    wk = np.zeros((kp, n), np.float32)
    wk[:k] = w
    h = np.zeros((kp, kp), np.float64)
    h[:k, :k] = gram
    u = _inverse_factor(h, damp).astype(np.float32)
    lazy = max(block_size, lazy // block_size * block_size)
    q = np.empty((kp, n), np.uint8)
    scale = np.empty((kb, n), np.float32)
    zp = np.empty((kb, n), np.float32)
    for i1 in range(0, kp, lazy):
        i2 = min(i1 + lazy, kp)
        w1, err = wk[i1:i2], np.empty((i2 - i1, n), np.float32)
        for j in range(i2 - i1):
            row = i1 + j
            if row % block_size == 0:
                b = row // block_size
                s, z = block_params(np.ascontiguousarray(w1[j:j + block_size].T)[:, None, :], bits, symmetric)
                scale[b], zp[b] = s[:, 0], z[:, 0]
            b = row // block_size
            levels = quantize_to(w1[j], scale[b], zp[b], bits)
            q[row] = levels
            err[j] = (w1[j] - (levels - zp[b]) * scale[b]) / u[row, row]
            w1[j + 1:] -= np.outer(u[row, row + 1:i2], err[j])
        wk[i2:] -= u[i1:i2, i2:].T @ err
    return np.ascontiguousarray(q.T), np.ascontiguousarray(zp.T).astype(np.uint8), np.ascontiguousarray(scale.T)
