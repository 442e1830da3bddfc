"""Sequence mixers: attention, hyena, mamba, mamba2, mlstm, slstm (see zoo/layers/base.py)."""
