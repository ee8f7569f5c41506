"""Block-wise weight quantization in onnxruntime's MatMulNBits format (com.microsoft).

A float weight W [K, N] is quantized per output column n and per block of `block_size`
consecutive rows k (K padded with zeros to whole blocks):
    W[k, n] ~ (q[n, k] - zp[n, k // block_size]) * scale[n, k // block_size]
with q and zp unsigned `bits`-bit integers. Symmetric: zp = 2^(bits-1) (the value MatMulNBits
assumes when its zero_points input is absent), scale = max|w| / (2^(bits-1) - 1). Asymmetric:
the block's [min, max] (0 included) over the full 0..2^bits-1 range. Each block's range may be
shrunk (SHRINK) where clipping its largest weights lowers the block's squared error.

Storage (MatMulNBits inputs):
- B: uint8 [N, k_blocks, block_size * bits / 8]; for 4 bits, element 2i of a block in the low
  nibble of byte i, element 2i+1 in the high nibble;
- scales: float32 [N, k_blocks];
- zero_points (asymmetric only): uint8 [N, ceil(k_blocks * bits / 8)], packed the same way.

`unpack` inverts the storage for the backends (which repack the integers into their kernel's own
layout) and for tests. No onnxruntime, no TVM: plain numpy."""

from __future__ import annotations

import numpy as np

BITS = (4, 8)


def default_zero_point(bits: int) -> int:
    return 1 << (bits - 1)


def _check(bits: int, block_size: int) -> None:
    if bits not in BITS:
        raise ValueError(f"bits must be one of {BITS}, got {bits}")
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of 2 >= 16 (MatMulNBits), got {block_size}")


# range shrink factors tried per block (1.0 first, so a tie keeps the full range): clipping the
# few largest weights of a block for a finer step lowers its squared error (the MSE scale search of
# llama.cpp's k-quants); 0.875 is the symmetric range that uses level -2^(bits-1) too
SHRINK = (1.0, 0.95, 0.9, 0.875, 0.85, 0.8, 0.75)


def _params(blocks: np.ndarray, bits: int, symmetric: bool, shrink: float):
    """(scale float32 [N, kb], zero point int [N, kb]) of a block range shrunk by `shrink`."""
    qmax = (1 << bits) - 1
    if symmetric:
        zp = np.full(blocks.shape[:2], default_zero_point(bits), np.int64)
        scale = np.abs(blocks).max(axis=2) * shrink / (default_zero_point(bits) - 1)
    else:
        lo, hi = np.minimum(blocks.min(axis=2), 0.0) * shrink, np.maximum(blocks.max(axis=2), 0.0) * shrink
        scale = (hi - lo) / qmax
        zp = np.where(scale > 0, np.clip(np.round(-lo / np.where(scale > 0, scale, 1.0)), 0, qmax), 0).astype(np.int64)
    return np.where(scale > 0, scale, 1.0).astype(np.float32), zp


def _quantize(blocks: np.ndarray, scale: np.ndarray, zp: np.ndarray, bits: int) -> np.ndarray:
    return quantize_to(blocks, scale[:, :, None], zp[:, :, None], bits)


def block_params(blocks: np.ndarray, bits: int, symmetric: bool, search: bool = True):
    """(scale float32 [N, kb], zero point int [N, kb]) of blocks [N, kb, block_size]: with
    `search`, each block's range is the one of SHRINK with the least squared error; else the
    block's full range."""
    best = None
    for shrink in SHRINK if search else (1.0,):
        scale, zp = _params(blocks, bits, symmetric, shrink)
        q = _quantize(blocks, scale, zp, bits)
        err = np.square((q - zp[:, :, None]) * scale[:, :, None] - blocks).sum(axis=2)
        if best is None:
            best = [err, scale, zp]
            continue
        better = err < best[0]
        best = [np.where(better, err, best[0]), np.where(better, scale, best[1]), np.where(better, zp, best[2])]
    return best[1], best[2]


def quantize_to(values: np.ndarray, scale: np.ndarray, zp: np.ndarray, bits: int) -> np.ndarray:
    """The integer levels (float array) of `values` on a grid (scale, zp) broadcast against it."""
    return np.clip(np.round(values / scale) + zp, 0, (1 << bits) - 1)


def quantize_blocks(w: np.ndarray, bits: int, block_size: int, symmetric: bool, search: bool = True):
    """W [K, N] float -> (q uint8 [N, k_blocks * block_size], zp uint8 [N, k_blocks],
    scale float32 [N, k_blocks]): the unpacked integers, see `pack`; each block rounded to the
    nearest level of its range (`block_params`)."""
    _check(bits, block_size)
    k, n = w.shape
    kb = -(-k // block_size)
    wp = np.zeros((kb * block_size, n), np.float32)
    wp[:k] = w
    blocks = np.ascontiguousarray(wp.T).reshape(n, kb, block_size)
    scale, zp = block_params(blocks, bits, symmetric, search)
    q = _quantize(blocks, scale, zp, bits).astype(np.uint8).reshape(n, kb * block_size)
    return q, zp.astype(np.uint8), scale.astype(np.float32)


def _pack_rows(vals: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [..., L] of `bits`-bit values -> packed uint8 [..., ceil(L * bits / 8)]."""
    if bits == 8:
        return vals.astype(np.uint8)
    if vals.shape[-1] % 2:
        vals = np.concatenate([vals, np.zeros((*vals.shape[:-1], 1), vals.dtype)], axis=-1)
    return (vals[..., 0::2] & 0xF) | ((vals[..., 1::2] & 0xF) << 4)


def _unpack_rows(packed: np.ndarray, bits: int, length: int) -> np.ndarray:
    if bits == 8:
        return packed[..., :length].astype(np.uint8)
    out = np.empty((*packed.shape[:-1], packed.shape[-1] * 2), np.uint8)
    out[..., 0::2] = packed & 0xF
    out[..., 1::2] = packed >> 4
    return out[..., :length]


def pack(q: np.ndarray, zp: np.ndarray, bits: int, block_size: int, symmetric: bool):
    """(B, zero_points or None) as MatMulNBits stores them."""
    n, kpad = q.shape
    b = _pack_rows(q, bits).reshape(n, kpad // block_size, block_size * bits // 8)
    return b, None if symmetric else _pack_rows(zp, bits)


def unpack(b: np.ndarray, zero_points: np.ndarray | None, bits: int, block_size: int, k: int, n: int):
    """MatMulNBits' (B, zero_points) -> (q uint8 [N, k_blocks * block_size], zp uint8 [N, k_blocks]).
    zero_points may be absent (the default zero point) or uint8-packed; a float zero point (also
    allowed by the schema) is refused with ValueError."""
    _check(bits, block_size)
    kb = -(-k // block_size)
    q = _unpack_rows(np.asarray(b, np.uint8).reshape(n, kb * block_size * bits // 8), bits, kb * block_size)
    if zero_points is None:
        zp = np.full((n, kb), default_zero_point(bits), np.uint8)
    else:
        if zero_points.dtype != np.uint8:
            raise ValueError(f"zero_points of type {zero_points.dtype} (only packed uint8 is supported)")
        zp = _unpack_rows(zero_points.reshape(n, -1), bits, kb)
    return q, zp


def dequantize(q: np.ndarray, zp: np.ndarray, scale: np.ndarray, k: int, block_size: int) -> np.ndarray:
    """W [K, N] float32 back from the unpacked integers (what MatMulNBits multiplies by)."""
    n, kb = zp.shape
    w = (q.reshape(n, kb, block_size).astype(np.float32) - zp[:, :, None].astype(np.float32)) \
        * scale.reshape(n, kb)[:, :, None].astype(np.float32)
    return np.ascontiguousarray(w.reshape(n, kb * block_size)[:, :k].T)
