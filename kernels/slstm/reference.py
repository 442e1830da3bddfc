"""sLSTM (Beck et al. 2024, arXiv:2405.04517): the spec (a loop over time) and the fast CPU torch form.

Notation: ``B`` batch, ``T`` time, ``H`` heads, ``D`` head dim; gates in NX-AI xlstm's order
``g = 0..3 = (i, f, z, o)``. Per head ``h``, with ``h_{t-1}, c_{t-1}, n_{t-1}, m_{t-1} [D]``:

    raw_g  = gates_x[t, g] + bias[g] + h_{t-1} @ R[:, g]          # R [H, D_in, 4, D_out] per head
    L      = m_{t-1} + log sigmoid(raw_f)                           # log of the stabilised forget gate
    m_t    = raw_i                          if n_{t-1} == 0 (an empty state)
             max(raw_i, L)                  otherwise
    i, f   = exp(raw_i - m_t), exp(L - m_t)                         # both <= 1
    c_t    = f c_{t-1} + i tanh(raw_z)
    n_t    = f n_{t-1} + i
    h_t    = sigmoid(raw_o) c_t / n_t

This is NX-AI xlstm's vanilla ``slstm_forward_pointwise`` (see README.md for the two places that are
written differently there without changing a value). Shapes: ``gates_x [B,T,4,H,D]``, ``R [H,D,4,D]``,
``bias [4,H,D]``, state ``(h, c, n, m)`` each ``[B,H,D]`` (fp32), output ``h_seq [B,T,H,D]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.kernels.common import check_shape

SLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""``(h, c, n, m)``, each ``[B,H,D]`` fp32."""

_STATE_NAMES = ("h", "c", "n", "m")


def _check(gates_x: torch.Tensor, R: torch.Tensor, bias: torch.Tensor, state: SLSTMState | None, step: bool):
    if step:
        check_shape("gates_x_t", gates_x, (None, 4, None, None), "[B,4,H,D]")
        b, _, h, d = gates_x.shape
    else:
        check_shape("gates_x", gates_x, (None, None, 4, None, None), "[B,T,4,H,D]")
        b, t, _, h, d = gates_x.shape
        if t == 0:
            raise ValueError("gates_x has T=0 time steps; pass at least one")
    check_shape("R", R, (h, d, 4, d), "[H,D,4,D]")
    check_shape("bias", bias, (4, h, d), "[4,H,D]")
    if state is not None:
        if len(state) != 4:
            raise ValueError(f"the sLSTM state is (h, c, n, m); got a sequence of {len(state)} tensors")
        for name, s in zip(_STATE_NAMES, state):
            check_shape(f"state {name}", s, (b, h, d), "[B,H,D]")


def zero_state(batch: int, heads: int, head_dim: int, device: torch.device | str | None = None) -> SLSTMState:
    """The empty state: all zeros, ``n = 0`` marks it empty (the first step then sets ``m`` to ``raw_i``)."""
    z = torch.zeros(batch, heads, head_dim, device=device)
    return (z, z.clone(), z.clone(), z.clone())


def _cell(raw: torch.Tensor, c: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> SLSTMState:
    """One pointwise step from the pre-activations ``raw [B,4,H,D]``; returns ``(h, c, n, m)``."""
    i_raw, f_raw, z_raw, o_raw = raw.unbind(1)
    log_f_plus_m = m + F.logsigmoid(f_raw)
    m_new = torch.where(n == 0, i_raw, torch.maximum(i_raw, log_f_plus_m))
    i = torch.exp(i_raw - m_new)
    f = torch.exp(log_f_plus_m - m_new)
    c_new = f * c + i * torch.tanh(z_raw)
    n_new = f * n + i
    h_new = torch.sigmoid(o_raw) * c_new / n_new
    return h_new, c_new, n_new, m_new


def _recurrent_input(h: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Block-diagonal recurrent term: ``h [B,H,D] @ R [H,D,4,D] -> [B,4,H,D]``."""
    return torch.einsum("bhd,hdge->bghe", h, R)


def slstm_recurrent_ref(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor,
    initial_state: SLSTMState | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """The spec: one token at a time. Returns ``(h_seq [B,T,H,D], (h, c, n, m) each [B,H,D])``."""
    _check(gates_x, R, bias, initial_state, step=False)
    b, _, _, heads, d = gates_x.shape
    if initial_state is None:
        initial_state = zero_state(b, heads, d, gates_x.device)
    h, c, n, m = (s.float() for s in initial_state)
    gx, R32, b32 = gates_x.float(), R.float(), bias.float()
    hs = []
    for t in range(gx.shape[1]):
        raw = gx[:, t] + b32 + _recurrent_input(h, R32)
        h, c, n, m = _cell(raw, c, n, m)
        hs.append(h)
    return torch.stack(hs, dim=1).to(gates_x.dtype), (h, c, n, m)


# Fast form. Time-major buffers with heads before batch, so one baddbmm per step computes the recurrent
# term of all heads. On CPU a step costs a few microseconds per op *and per tensor view*, so each loop
# works on small persistent buffers whose views are made once, and touches the per-step slices of the
# big [T, ...] tensors only to read its input and write its result. Within a step, L is written over
# raw_f so that (raw_i, L) sit side by side and one amax / sub / exp gives (m, i, f), and (c, n) are
# stacked so that one mul and one addcmul update both. At batch 1 the step is bound by reading R
# (256 KB at H=4, D=64), so R is not padded to make room for more tricks.


def _forward_loop(G: torch.Tensor, R: torch.Tensor, state: SLSTMState, keep: bool):
    """Run the recurrence over ``G [T,H,B,4,D]`` (pre-activations with the bias, no ``h R`` yet).

    Returns ``Hs [T,H,B,D]`` and the final ``(c, n) [H,B,2,D]`` and ``m [H,B,1,D]``. With ``keep``, also
    keeps what the backward needs: ``G`` then holds per step ``(raw_i, L, raw_z, sigmoid(raw_o))``, and
    ``CN [T+1,H,B,2,D]``, ``M [T+1,H,B,1,D]`` the states, index 0 = the initial state.
    """
    T, heads, b, _, d = G.shape
    h0, c0, n0, m0 = state
    # raw_f enters negated, so that L = m + log sigmoid(raw_f) = m - softplus(-raw_f): one op fewer
    R2 = R.clone()
    R2[:, :, 1].neg_()
    R2 = R2.reshape(heads, d, 4 * d)
    G[:, :, :, 1].neg_()
    W = G.new_empty(heads, b, 4, d)  # this step's pre-activations, then (raw_i, L, raw_z, sigmoid(raw_o))
    W2, w_pair, w_f, w_z, w_o = W.view(heads, b, 4 * d), W[:, :, 0:2], W[:, :, 1], W[:, :, 2], W[:, :, 3]
    E = G.new_empty(heads, b, 2, d)  # (i, f)
    i_u, f_u = E[:, :, 0:1], E[:, :, 1:2]
    Z1 = G.new_ones(heads, b, 2, d)  # (tanh(raw_z), 1): times i, the increments of (c, n)
    tz = Z1[:, :, 0]
    # the previous and the current (c, n) and m swap roles every step
    CNs = [torch.stack([c0, n0], dim=-2), G.new_empty(heads, b, 2, d)]
    Ms = [m0.unsqueeze(-2).clone(), G.new_empty(heads, b, 1, d)]
    cs, ns, ms = [x[:, :, 0] for x in CNs], [x[:, :, 1] for x in CNs], [x[:, :, 0] for x in Ms]
    Hs = G.new_empty(T, heads, b, d)
    G2_t, H_t = G.flatten(-2).unbind(0), Hs.unbind(0)
    CN = M = None
    if keep:
        CN, M = G.new_empty(T + 1, heads, b, 2, d), G.new_empty(T + 1, heads, b, 1, d)
        CN[0], M[0] = CNs[0], Ms[0]
        G_t, CN_t, M_t = G.unbind(0), CN.unbind(0), M.unbind(0)
    softplus, h_prev = F.softplus, h0
    for t in range(T):
        p, q = t % 2, 1 - t % 2
        torch.baddbmm(G2_t[t], h_prev, R2, out=W2)
        torch.sub(ms[p], softplus(w_f), out=w_f)
        torch.amax(w_pair, dim=-2, keepdim=True, out=Ms[q])
        if t == 0:
            # an empty state (n = 0) takes m = raw_i; afterwards n >= min(n_0, 1) > 0
            Ms[q].copy_(torch.where((n0 == 0).unsqueeze(-2), W[:, :, 0:1], Ms[q]))
        torch.sub(w_pair, Ms[q], out=E)
        E.exp_()
        torch.tanh(w_z, out=tz)
        torch.mul(CNs[p], f_u, out=CNs[q])
        CNs[q].addcmul_(Z1, i_u)
        w_o.sigmoid_()
        h_prev = H_t[t]
        torch.div(cs[q], ns[q], out=h_prev)
        h_prev.mul_(w_o)
        if keep:
            G_t[t].copy_(W)
            CN_t[t + 1].copy_(CNs[q])
            M_t[t + 1].copy_(Ms[q])
    return Hs, CNs[T % 2], Ms[T % 2], CN, M


class _SLSTMFunction(torch.autograd.Function):
    """Fast sLSTM with a hand-written backward; all tensors fp32, time-major ``[T,H,B,...]``."""

    @staticmethod
    def forward(ctx, gx, R, bias, h0, c0, n0, m0, keep):
        # gx [T,H,B,4,D], R [H,D,4,D], bias [4,H,D], states [H,B,D]; keep: a backward will follow
        # contiguous, so that the per-step slices are views (gx itself is a permuted view)
        G = torch.add(gx, bias.transpose(0, 1).unsqueeze(1), out=gx.new_empty(gx.shape))
        Hs, cn, m, CN, M = _forward_loop(G, R, (h0, c0, n0, m0), keep)
        if keep:
            ctx.save_for_backward(gx, R, bias, G, h0, Hs, CN, M)
        return Hs, Hs[-1].clone(), cn[:, :, 0].clone(), cn[:, :, 1].clone(), m[:, :, 0]

    @staticmethod
    def backward(ctx, dHs, dhT, dcT, dnT, dmT):
        gx, R, bias, G, h0, Hs, CN, M = ctx.saved_tensors
        T, heads, b, _, d = G.shape
        dHs = torch.zeros_like(Hs) if dHs is None else dHs.clone()
        if dhT is not None:
            dHs[-1] += dhT
        h_prev = torch.cat([h0.unsqueeze(0), Hs[:-1]], dim=0)  # [T,H,B,D]
        # Everything but the carried gradients is known after the forward: compute it for all steps at
        # once, packed in one tensor so that a step reads it with one copy into fixed views.
        # raw_f was overwritten by L in the forward; recomputing it is one matmul over all steps.
        f_raw = gx[:, :, :, 1] + bias[1].unsqueeze(1) + torch.einsum("thbd,hde->thbe", h_prev, R[:, :, 1])
        i_raw, L, z_raw, o = G.unbind(3)
        c, n, m = CN[:, :, :, 0], CN[:, :, :, 1], M[:, :, :, 0]  # T+1 entries, index 0 = initial
        i = torch.exp(i_raw - m[1:])
        f = torch.exp(L - m[1:])
        tz = torch.tanh(z_raw)
        # torch.maximum sends the gradient to the larger argument, half to each on a tie; empty -> raw_i
        wi = (i_raw > L).float() + 0.5 * (i_raw == L).float()
        wi = torch.where(n[:-1] == 0, 1.0, wi)
        factors = [
            Hs * (1 - o),  # 0: d raw_o / d h (h = o c / n)
            o / n[1:],  # 1, 2: d (c, n) / d h, laid out like the stacked (c, n)
            -Hs / n[1:],
            i * (1 - tz * tz),  # 3: d raw_z / d c
            i * tz,  # 4-7: d (c, n) / d (exp arguments of i, f): rows (i, f), columns (c, n)
            i,
            f * c[:-1],
            f * n[:-1],
            wi,  # 8, 9: share of d m_t that goes to raw_i, L through the max
            1 - wi,
            torch.sigmoid(-f_raw),  # 10: d log sigmoid(raw_f) / d raw_f
            f,  # 11: d (c, n)_{t-1} / d (c, n)_t
        ]
        P = torch.stack(factors, dim=3)  # [T,H,B,12,D]
        del factors, f_raw, i_raw, L, z_raw, o, c, n, m, i, f, tz, wi
        Pw = G.new_empty(heads, b, 12, d)
        p_o, p_cn, p_z, p_if = Pw[:, :, 0], Pw[:, :, 1:3], Pw[:, :, 3], Pw[:, :, 4:8].unflatten(2, (2, 2))
        p_w, p_sig, p_f = Pw[:, :, 8:10], Pw[:, :, 10], Pw[:, :, 11:12]

        dG = G.new_empty(T, heads, b, 4, d)  # (d raw_i, d raw_f, d raw_z, d raw_o)
        dW = G.new_zeros(heads, b, 4, d)  # this step's; d L passes through slot 1
        dW2, dw_pair, dw_L, dw_f, dw_z, dw_o = (
            dW.view(heads, b, 4 * d), dW[:, :, 0:2], dW[:, :, 1:2], dW[:, :, 1], dW[:, :, 2], dW[:, :, 3]
        )  # fmt: skip
        zeros = G.new_zeros(heads, b, d)
        DCN = torch.stack([zeros if dcT is None else dcT, zeros if dnT is None else dnT], dim=-2)
        dc, DCN_u = DCN[:, :, 0], DCN.unsqueeze(-3)
        dm = (zeros if dmT is None else dmT).unsqueeze(-2).clone()  # [H,B,1,D]
        dh_u = G.new_empty(heads, b, 1, d)
        dh = dh_u[:, :, 0]
        Rt = R.reshape(heads, d, 4 * d).transpose(1, 2).contiguous()
        dHs_t, P_t, dG_t = dHs.unbind(0), P.unbind(0), dG.unbind(0)
        for t in range(T - 1, -1, -1):
            if t == T - 1:
                dh.copy_(dHs_t[t])
            else:
                torch.baddbmm(dHs_t[t], dW2, Rt, out=dh)
            Pw.copy_(P_t[t])
            torch.mul(dh, p_o, out=dw_o)
            DCN.addcmul_(dh_u, p_cn)
            torch.mul(dc, p_z, out=dw_z)
            # gradients of the exp arguments of (i, f), then of m_t, which reaches them through the max
            dexp = (DCN_u * p_if).sum(-2)
            dm_tot = dm - dexp.sum(-2, keepdim=True)
            torch.addcmul(dexp, p_w, dm_tot, out=dw_pair)
            dm.copy_(dw_L)
            dw_f.mul_(p_sig)
            DCN.mul_(p_f)
            dG_t[t].copy_(dW)
        dh0 = torch.bmm(dW2, Rt)
        dR = torch.einsum("thbd,thbge->hdge", h_prev, dG)
        dbias = dG.sum((0, 2)).transpose(0, 1)
        return dG, dR, dbias, dh0, DCN[:, :, 0], DCN[:, :, 1], dm[:, :, 0], None


def slstm_chunk_ref(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    bias: torch.Tensor,
    initial_state: SLSTMState | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """The fast CPU form of :func:`slstm_recurrent_ref` (same arguments and results).

    sLSTM is nonlinear in ``h``, so there is no parallel form: this is the same loop, cut to one batched
    matmul and eleven elementwise ops per step, with a hand-written backward pass.
    """
    _check(gates_x, R, bias, initial_state, step=False)
    b, _, _, heads, d = gates_x.shape
    if initial_state is None:
        initial_state = zero_state(b, heads, d, gates_x.device)
    gx = gates_x.float().permute(1, 3, 0, 2, 4)  # [T,H,B,4,D]
    states = [s.float().transpose(0, 1) for s in initial_state]  # [H,B,D]
    tensors = (gates_x, R, bias, *initial_state)
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    Hs, h, c, n, m = _SLSTMFunction.apply(gx, R.float(), bias.float(), *states, keep)
    final = tuple(s.transpose(0, 1).contiguous() for s in (h, c, n, m))
    return Hs.permute(2, 0, 1, 3).to(gates_x.dtype), final


def slstm_cell_step(
    gates_x_t: torch.Tensor, R: torch.Tensor, bias: torch.Tensor, state: SLSTMState
) -> tuple[torch.Tensor, SLSTMState]:
    """One token of the spec: ``gates_x_t [B,4,H,D]`` -> ``(h_t [B,H,D], (h, c, n, m))``."""
    _check(gates_x_t, R, bias, state, step=True)
    h, c, n, m = (s.float() for s in state)
    raw = gates_x_t.float() + bias.float() + _recurrent_input(h, R.float())
    new = _cell(raw, c, n, m)
    return new[0].to(gates_x_t.dtype), new
