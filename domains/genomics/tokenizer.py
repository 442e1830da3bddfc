"""Single-nucleotide DNA tokenizer over ``zoo.vocab.DNA_TOKENS`` (ids: A=7, C=8, G=9, T=10, N=11, [PAD]=4).

Encoding is one table lookup over the string's bytes, so a 12 Mb chromosome encodes in tens of milliseconds.
Lowercase (soft-masked repeats) is accepted and maps to the same ids as uppercase; soft-masking is dropped
unless the tokenizer is built with ``soft_mask="flag"``, whose ``encode_with_mask`` also returns which bases
were lowercase (``decode`` can restore them). Any other character is an error naming the character, its
position and the alphabet: silently mapping a gap, a digit or an RNA ``U`` to ``N``
would hide a formatting problem in the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from zoo.vocab import DNA_TOKENS, dna_complement_map, pad_encoded

_ID = {token: i for i, token in enumerate(DNA_TOKENS)}
BASES = "ACGTN"
#: IUPAC ambiguity codes other than N; ``unknown="N"`` maps these (either case) to N.
IUPAC_AMBIGUOUS = "RYSWKMBDHV"

_INVALID = -1
_HINTS = {
    "U": "U is an RNA base: replace U with T to read RNA as DNA",
    "-": "'-' is an alignment gap: remove gaps first",
    ".": "'.' is an alignment gap: remove gaps first",
    " ": "whitespace is not stripped: join the sequence lines first",
    "\n": "whitespace is not stripped: join the sequence lines first",
}


def _lookup(unknown: Literal["error", "N"]) -> np.ndarray:
    table = np.full(256, _INVALID, dtype=np.int16)
    for base in BASES:
        table[ord(base)] = table[ord(base.lower())] = _ID[base]
    if unknown == "N":
        for code in IUPAC_AMBIGUOUS:
            table[ord(code)] = table[ord(code.lower())] = _ID["N"]
    return table


class DNATokenizer:
    """ACGTN (either case) <-> token ids of ``zoo.vocab.DNA_TOKENS``.

    Args:
        unknown: what IUPAC ambiguity codes (R Y S W K M B D H V) become: ``"error"`` raises,
            ``"N"`` maps them to N. Characters outside IUPAC are an error either way.
        soft_mask: ``"upper"`` reads lowercase (soft-masked) bases as uppercase and forgets the case;
            ``"flag"`` also enables ``encode_with_mask``, which returns the lowercase positions.
    """

    def __init__(self, unknown: Literal["error", "N"] = "error", soft_mask: Literal["upper", "flag"] = "upper"):
        if unknown not in ("error", "N"):
            raise ValueError(f"unknown must be 'error' or 'N', got {unknown!r}")
        if soft_mask not in ("upper", "flag"):
            raise ValueError(f"soft_mask must be 'upper' or 'flag', got {soft_mask!r}")
        self.unknown = unknown
        self.soft_mask = soft_mask
        self._encode = _lookup(unknown)
        self._complement = np.array(dna_complement_map(len(DNA_TOKENS)), dtype=np.int64)
        self._chars = np.array([ord(t) if len(t) == 1 else ord("?") for t in DNA_TOKENS], dtype=np.uint8)

    pad_id = _ID["[PAD]"]
    """Id of ``[PAD]``, used by ``batch_encode``."""
    n_id = _ID["N"]
    """Id of ``N``."""
    base_ids = np.array([_ID[b] for b in "ACGT"], dtype=np.int64)
    """Ids of A, C, G, T, in that order."""

    @property
    def vocab_size(self) -> int:
        """Number of tokens (unpadded; models pad the embedding to a multiple of 8)."""
        return len(DNA_TOKENS)

    def encode(self, seq: str | bytes, dtype: np.dtype | type = np.int64) -> np.ndarray:
        """Token ids ``[L]`` of a sequence of ``L`` bases (``dtype`` int64 unless asked otherwise)."""
        return self._encode_bytes(self._bytes(seq)).astype(dtype)

    def encode_with_mask(self, seq: str | bytes, dtype: np.dtype | type = np.int64) -> tuple[np.ndarray, np.ndarray]:
        """Ids ``[L]`` (as ``encode``) and ``soft_masked [L]`` bool, True where the base was lowercase.

        Only for a tokenizer built with ``soft_mask="flag"``: the default ``"upper"`` promises to drop the case.
        """
        if self.soft_mask != "flag":
            raise ValueError(
                "encode_with_mask needs DNATokenizer(soft_mask='flag'); this tokenizer has soft_mask='upper', "
                "which reads lowercase bases as uppercase and drops the case"
            )
        raw = self._bytes(seq)
        ids = self._encode_bytes(raw).astype(dtype)
        codes = np.frombuffer(raw, dtype=np.uint8)
        return ids, (codes >= ord("a")) & (codes <= ord("z"))

    def decode(
        self, ids: np.ndarray | Sequence[int], skip_special: bool = False, soft_masked: np.ndarray | None = None
    ) -> str:
        """Uppercase string of token ids ``[L]``; special tokens appear as ``[PAD]`` etc. unless skipped.

        ``soft_masked [L]`` (from ``encode_with_mask``) writes the flagged bases in lowercase again.
        """
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"decode takes one sequence of ids [L], got shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(DNA_TOKENS)):
            bad = ids[(ids < 0) | (ids >= len(DNA_TOKENS))][0]
            raise ValueError(f"token id {bad} is outside the DNA vocabulary [0, {len(DNA_TOKENS)})")
        special = ids < _ID["A"]
        if soft_masked is not None:
            soft_masked = np.asarray(soft_masked, dtype=bool)
            if soft_masked.shape != ids.shape:
                raise ValueError(f"soft_masked has shape {soft_masked.shape}, ids have shape {ids.shape}")
            if (soft_masked & special).any():
                position = int(np.argmax(soft_masked & special))
                raise ValueError(f"soft_masked flags position {position}, a special token: only bases have a case")
        if skip_special:
            keep = ~special
            ids, special = ids[keep], special[keep]
            soft_masked = None if soft_masked is None else soft_masked[keep]
        if not special.any():
            chars = self._chars[ids]
            if soft_masked is not None:
                # ASCII lowercase is uppercase + 32.
                chars = np.where(soft_masked, chars + 32, chars).astype(np.uint8)
            return chars.tobytes().decode("ascii")
        tokens = [DNA_TOKENS[i] for i in ids.tolist()]
        if soft_masked is not None:
            tokens = [t.lower() if flag else t for t, flag in zip(tokens, soft_masked.tolist())]
        return "".join(tokens)

    def reverse_complement(self, ids: np.ndarray) -> np.ndarray:
        """Reverse complement of ids ``[..., L]`` along the last axis; specials and N map to themselves.

        For a padded batch the padding moves to the front of each row: reverse-complement before padding.
        """
        ids = np.asarray(ids)
        return self._complement[ids[..., ::-1]].astype(ids.dtype, copy=False)

    def batch_encode(
        self, seqs: Sequence[str], pad_to: int | None = None, padding_side: Literal["right", "left"] = "right"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids ``[B, T]`` (int64, padded with ``[PAD]``) and mask ``[B, T]`` (bool, True on bases).

        ``T`` is ``pad_to`` or the longest sequence; a sequence longer than ``pad_to`` is an error, not
        silently truncated. ``padding_side="right"`` keeps position ``t`` of every row at column ``t`` (what a
        causal model needs for its outputs to ignore the padding); ``"left"`` aligns the sequences' ends
        (e.g. to continue them all by one step together).
        """
        encoded = [self.encode(s) for s in seqs]
        return pad_encoded(encoded, self.pad_id, pad_to, padding_side, "bases")

    def _bytes(self, seq: str | bytes) -> bytes:
        if isinstance(seq, str):
            try:
                return seq.encode("ascii")
            except UnicodeEncodeError as error:
                raise self._error(seq[error.start], error.start) from None
        return bytes(seq)

    def _encode_bytes(self, raw: bytes) -> np.ndarray:
        ids = self._encode[np.frombuffer(raw, dtype=np.uint8)]
        bad = ids == _INVALID
        if bad.any():
            position = int(np.argmax(bad))
            raise self._error(chr(raw[position]), position)
        return ids

    def _error(self, char: str, position: int) -> ValueError:
        message = f"invalid DNA character {char!r} at position {position}; allowed: {BASES} (either case)"
        if char.upper() in IUPAC_AMBIGUOUS:
            return ValueError(
                f"{message}. {char!r} is an IUPAC ambiguity code: map such codes to N explicitly with "
                "DNATokenizer(unknown='N')"
            )
        hint = _HINTS.get(char.upper())
        return ValueError(f"{message}. {hint}" if hint else message)
