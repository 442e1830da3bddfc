"""Every zoo entry, listed explicitly by family module (no import-time registration)."""

from zoo.entries import caduceus, forecasting, hybridna, hyenadna, mamba, protmamba, transformer, xlstm

ENTRIES = (
    *hyenadna.ENTRIES,
    *hybridna.ENTRIES,
    *caduceus.ENTRIES,
    *mamba.ENTRIES,
    *xlstm.ENTRIES,
    *protmamba.ENTRIES,
    *transformer.ENTRIES,
    *forecasting.ENTRIES,
)
