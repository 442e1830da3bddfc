"""Launches of the sLSTM Triton kernels and their autograd wrapper.

``slstm_triton`` has the signature of ``slstm_chunk_ref``: ``gates_x [B,T,4,H,D]``, ``R [H,D,4,D]``,
``bias [4,H,D]``, ``initial_state = (h, c, n, m)`` each ``[B,H,D]`` or None
-> ``(h_seq [B,T,H,D] in gates_x's dtype, (h, c, n, m) each [B,H,D] fp32)``.

Memory: when a gradient is needed the forward saves every step's state ``(h, c, n, m)`` in fp32,
``16 B (T+1) H D`` bytes (four fp32 copies of ``h_seq``, i.e. twice ``gates_x`` in bf16); the pre-activations
are recomputed in the backward from the saved ``h_{t-1}`` with the on-chip ``R``. Without a gradient
nothing is saved.
"""

from __future__ import annotations

import torch
import triton

from zoo.kernels.slstm.ops import TRITON_MAX_HEAD_DIM as MAX_HEAD_DIM
from zoo.kernels.slstm.reference import SLSTMState, _check
from zoo.kernels.slstm.triton_kernels import slstm_bwd_kernel, slstm_fwd_kernel

# MAX_HEAD_DIM (64): one head's R (16 D^2 bytes in fp32, 64 KB at D = 64) plus, in the backward, its fp32 dR
# sums must live in one program's registers for the whole sequence.


def _launch_params(batch: int, head_dim: int, block_b: int | None) -> tuple[int, int, int]:
    """``(BB, BD, num_warps)``: batch rows per program, padded head dim, warps."""
    bd = max(16, triton.next_power_of_2(head_dim))
    # 16 rows is tl.dot's minimum; more rows per program reuse R more but leave SMs idle at small B H
    bb = block_b or 16
    # 8 warps at D = 64 spread the 4 D^2 weights (and the backward's 4 D^2 dR sums) over more registers
    num_warps = 8 if bd >= 64 else 4
    return bb, bd, num_warps


def _check_head_dim(head_dim: int) -> None:
    if head_dim > MAX_HEAD_DIM:
        raise ValueError(
            f"the Triton sLSTM keeps one head's R on chip and supports head dims D <= {MAX_HEAD_DIM}, "
            f"got D={head_dim}; use impl='torch' (impl='auto' does) or more, smaller heads"
        )


def slstm_fwd(gates_x, R, bias, initial_state, save: bool, block_b: int | None = None):
    """Forward launch: ``(h_seq, (h, c, n, m) fp32, states [B,T+1,4,H,D] fp32 | None)``."""
    batch, length, _, heads, head_dim = gates_x.shape
    bb, bd, num_warps = _launch_params(batch, head_dim, block_b)
    dev = gates_x.device
    y = torch.empty(batch, length, heads, head_dim, device=dev, dtype=gates_x.dtype)
    final = tuple(torch.empty(batch, heads, head_dim, device=dev, dtype=torch.float32) for _ in range(4))
    states = torch.empty(batch, length + 1, 4, heads, head_dim, device=dev, dtype=torch.float32) if save else None
    init = initial_state if initial_state is not None else (gates_x,) * 4  # never read without HAS_INIT
    grid = (heads, triton.cdiv(batch, bb))
    slstm_fwd_kernel[grid](
        gates_x, R, bias, *init, y, *final, y if states is None else states,
        batch, length, heads, head_dim,
        BB=bb, BD=bd, HAS_INIT=initial_state is not None, SAVE=save,
        HALF=gates_x.dtype in (torch.float16, torch.bfloat16), num_warps=num_warps,
    )  # fmt: skip
    return y, final, states


def slstm_bwd(gates_x, R, bias, states, dy, dfinal, block_b: int | None = None):
    """Backward launch: ``(dgates_x, dR fp32, dbias fp32, (dh0, dc0, dn0, dm0) fp32)``."""
    batch, length, _, heads, head_dim = gates_x.shape
    bb, bd, num_warps = _launch_params(batch, head_dim, block_b)
    n_blocks = triton.cdiv(batch, bb)
    dev = gates_x.device
    dgx = torch.empty_like(gates_x)
    dR = torch.empty(n_blocks, heads, head_dim, 4, head_dim, device=dev, dtype=torch.float32)
    dbias = torch.empty(n_blocks, 4, heads, head_dim, device=dev, dtype=torch.float32)
    dinit = tuple(torch.empty(batch, heads, head_dim, device=dev, dtype=torch.float32) for _ in range(4))
    slstm_bwd_kernel[(heads, n_blocks)](
        gates_x, R, bias, states, dy, *dfinal, dgx, dR, dbias, *dinit,
        batch, length, heads, head_dim,
        BB=bb, BD=bd, HALF=gates_x.dtype in (torch.float16, torch.bfloat16), num_warps=num_warps,
    )  # fmt: skip
    # per batch block partial sums, reduced here in a fixed order: deterministic
    return dgx, dR.sum(0), dbias.sum(0), dinit


class SLSTMFunction(torch.autograd.Function):
    """Autograd wrapper: saves the inputs and the per-step fp32 states; the backward recomputes the gates."""

    @staticmethod
    def forward(ctx, gates_x, R, bias, h0, c0, n0, m0, save):
        # save: a backward will follow (decided by the caller: grad mode is always off in here)
        initial_state = None if h0 is None else (h0, c0, n0, m0)
        y, final, states = slstm_fwd(gates_x, R, bias, initial_state, save)
        if save:
            ctx.save_for_backward(gates_x, R, bias, states)
            ctx.init_dtypes = None if h0 is None else tuple(s.dtype for s in initial_state)
        return y, *final

    @staticmethod
    def backward(ctx, dy, dhT, dcT, dnT, dmT):
        gates_x, R, bias, states = ctx.saved_tensors
        # grads are materialised (zeros for an unused output): the kernel always reads all five
        dfinal = tuple(g.contiguous() for g in (dhT, dcT, dnT, dmT))
        dgx, dR, dbias, dinit = slstm_bwd(gates_x, R, bias, states, dy.contiguous(), dfinal)
        if ctx.init_dtypes is None:
            dinit = (None,) * 4
        else:
            dinit = tuple(g.to(dt) for g, dt in zip(dinit, ctx.init_dtypes))
        return dgx, dR.to(R.dtype), dbias.to(bias.dtype), *dinit, None


def slstm_triton(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor,
    initial_state: SLSTMState | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """Triton sLSTM over a sequence (same arguments and results as ``slstm_chunk_ref``); head dim ``D <= 64``.

    Returns ``(h_seq [B,T,H,D] in gates_x's dtype, (h, c, n, m) each [B,H,D] fp32)``; differentiable in every
    tensor input, including the initial state, and honours gradients into the final state.
    """
    _check(gates_x, R, bias, initial_state, step=False)
    _check_head_dim(gates_x.shape[-1])
    gates_x, R, bias = gates_x.contiguous(), R.contiguous(), bias.contiguous()
    init = (None,) * 4 if initial_state is None else tuple(s.contiguous() for s in initial_state)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (gates_x, R, bias, *init))
    y, h, c, n, m = SLSTMFunction.apply(gates_x, R, bias, *init, save)
    return y, (h, c, n, m)
