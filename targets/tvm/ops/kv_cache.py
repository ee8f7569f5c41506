"""edgec.KVCacheWrite (docs/edgec-ops.md; emitted by the kv-cache-in-place pass, --kv-cache MAX):
the new K or V rows written into the caller's cache buffer in place.

Cache [batch, kv_heads, MAX, head_dim] is a graph input the caller allocates once; New
[batch, kv_heads, S, head_dim] goes to rows [P, P + S) by one small TIR kernel called with Relax
`call_tir_inplace` (its output aliases the Cache argument: no allocation, no copy of the cache).
The kernel asserts 0 <= P and P + S <= MAX before it writes (a TIR AssertStmt: the run fails with
one edgec guard message, never a write out of bounds; every runtime edgec deploys to reports it).
The node's value is the whole buffer; `ctx.kv_lengths` records its valid rows T = P + S, which
edgec.Attention reads (targets/tvm/ops/edgec_attention.py): the pass lets no other op consume it.
"""

from __future__ import annotations

from tvm import relax, tirx
from tvm.script import tirx as T

from edgec.errors import GUARD_PREFIX, InternalError
from edgec.ir.edgec_ops import EDGEC_DOMAIN
from edgec.targets.tvm.ops import lowers
from edgec.targets.tvm.symbolic import dims_of, shape_value, simplify


def _write_kernel(heads: int, max_len: int, head_dim: int, dtype: str, message: str):
    @T.prim_func(private=True)
    def edgec_kv_cache_write(var_cache: T.handle, var_new: T.handle, past: T.int64):
        T.func_attr({"tir.noalias": True, "op_pattern": 8})  # opaque: never fused into neighbours
        batch = T.int64()
        seq = T.int64()
        cache = T.match_buffer(var_cache, (batch, T.int64(heads), T.int64(max_len), T.int64(head_dim)), dtype)
        new = T.match_buffer(var_new, (batch, T.int64(heads), seq, T.int64(head_dim)), dtype)
        assert past >= T.int64(0) and past + seq <= T.int64(max_len), message
        for b, h, i, d in T.grid(batch, T.int64(heads), seq, T.int64(head_dim)):
            cache[b, h, past + i, d] = new[b, h, i, d]

    return edgec_kv_cache_write


@lowers("KVCacheWrite", domain=EDGEC_DOMAIN)
def kv_cache_write(ctx, node, xs):
    what = f"{ctx.file}: node '{node.name}' (edgec.KVCacheWrite)"
    cache, new = xs[0], xs[1]
    dc, dn = dims_of(cache), dims_of(new)
    past = shape_value(ctx, node.inputs[2])
    if past is None or past.size != 1:
        raise InternalError(f"{what}: the past length is not known from the input shapes")
    past = simplify(past.reshape(-1)[0])
    if (dc is None or dn is None or len(dc) != 4 or len(dn) != 4 or not all(isinstance(d, int) for d in dc[1:])
            or dc[1] != dn[1] or dc[3] != dn[3] or str(cache.ty.dtype) != str(new.ty.dtype)):
        raise InternalError(f"{what}: cache {cache.ty} and new rows {new.ty} do not fit")
    heads, max_len, head_dim = dc[1], dc[2], dc[3]
    # one message for every cache (not the node's name): the layers' writes share one kernel
    message = (f"{GUARD_PREFIX}{ctx.file}: edgec.KVCacheWrite: past + new tokens exceed the KV cache's {max_len} "
               f"rows (--kv-cache), or attention_mask is shorter than input_ids")
    fn = ctx.bb.add_func(_write_kernel(heads, max_len, head_dim, str(cache.ty.dtype), message), "edgec_kv_cache_write")
    p = relax.prim_value(tirx.IntImm("int64", past) if isinstance(past, int) else past)
    out = ctx.emit(relax.call_tir_inplace(fn, [cache, new, p], 0, cache.ty))
    ctx.kv_lengths[node.outputs[0].name] = simplify(past + dn[2])
    return out
