"""sLSTM: scalar-memory LSTM with exponential gating (xLSTM, NX-AI's vanilla sLSTM cell)."""

from zoo.kernels.slstm.ops import slstm_chunk, slstm_step
from zoo.kernels.slstm.reference import slstm_chunk_ref, slstm_recurrent_ref

__all__ = ["slstm_chunk", "slstm_chunk_ref", "slstm_recurrent_ref", "slstm_step"]
