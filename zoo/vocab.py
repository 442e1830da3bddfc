"""Character vocabularies shared by models and tokenizers.

The DNA layout is HyenaDNA's / Caduceus' character tokenizer (7 specials, then A C G T N), so their
official checkpoints load without re-ordering embedding rows. Models pad the vocabulary to a multiple
of 8 for speed; the padding rows are never produced by a tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
DNA_TOKENS = (*SPECIAL_TOKENS, "A", "C", "G", "T", "N")
PROTEIN_TOKENS = (
    *SPECIAL_TOKENS,
    *"ACDEFGHIKLMNPQRSTVWY",  # the 20 standard amino acids
    *"XBZUO",  # unknown, ambiguous (B = D/N, Z = E/Q), selenocysteine, pyrrolysine
    "-",  # alignment gap, used when homologs are given as context
    # Fill-in-the-middle over concatenated homologs (ProtMamba / Prot-xLSTM style): a causal model reads
    # ``homologs [SEP] prefix [MASK] suffix [FIM] middle [EOS]``, so it learns to fill a masked span from
    # both sides, which also gives causal models a masked-marginal mutation score.
    "[EOS]",
    "[FIM]",
)

_DNA_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def dna_complement_map(vocab_size: int) -> list[int]:
    """Token id -> id of its Watson-Crick complement; specials, N and padding rows map to themselves."""
    index = {tok: i for i, tok in enumerate(DNA_TOKENS)}
    mapping = list(range(vocab_size))
    for base, comp in _DNA_COMPLEMENT.items():
        mapping[index[base]] = index[comp]
    return mapping


def padded_vocab_size(size: int, multiple: int = 8) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return -(-size // multiple) * multiple


def pad_encoded(
    encoded: Sequence[np.ndarray], pad_id: int, pad_to: int | None, padding_side: str, unit: str
) -> tuple[np.ndarray, np.ndarray]:
    """Token-id arrays as ids ``[B, T]`` (int64, ``pad_id`` elsewhere) and mask ``[B, T]`` (True on tokens): the
    padding of every tokenizer's ``batch_encode``. ``T`` is ``pad_to`` or the longest array; a longer array is an
    error naming its index and length in ``unit`` (``bases``, ``residues``), never silently truncated."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    longest = max((len(e) for e in encoded), default=0)
    width = longest if pad_to is None else pad_to
    if longest > width:
        index = next(i for i, e in enumerate(encoded) if len(e) > width)
        raise ValueError(f"sequence {index} has {len(encoded[index])} {unit}, more than pad_to={pad_to}")
    ids = np.full((len(encoded), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(encoded), width), dtype=bool)
    for row, e in enumerate(encoded):
        columns = slice(0, len(e)) if padding_side == "right" else slice(width - len(e), width)
        ids[row, columns] = e
        mask[row, columns] = True
    return ids, mask
