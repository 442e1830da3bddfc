"""mLSTM cell (xLSTM's matrix-memory LSTM with exponential input gate), as in NX-AI's mlstm_kernels."""

from zoo.kernels.mlstm.ops import mlstm_chunk, mlstm_step
from zoo.kernels.mlstm.reference import mlstm_chunk_ref, mlstm_recurrent_ref

__all__ = ["mlstm_chunk", "mlstm_chunk_ref", "mlstm_recurrent_ref", "mlstm_step"]
