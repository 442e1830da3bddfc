"""Every zoo entry, listed explicitly by family module (no import-time registration)."""

from zoo.entries import caduceus, forecasting, hybridna, hyenadna, protmamba, transformer, xlstm

ENTRIES = (
    *hyenadna.ENTRIES,
    *hybridna.ENTRIES,
    *caduceus.ENTRIES,
    *xlstm.ENTRIES,
    *protmamba.ENTRIES,
    *transformer.ENTRIES,
    *forecasting.ENTRIES,
)
