"""Amino-acid tokenizer over ``zoo.vocab.PROTEIN_TOKENS`` (ids: A=7 ... Y=26, X B Z U O = 27..31, gap ``-`` = 32).

Encoding is one table lookup over the string's bytes, as for DNA. Everything that is not a plain uppercase
standard residue goes through an explicit, documented policy (constructor options):

* non-standard residues X B Z U O: ``nonstandard="keep"`` (own ids), ``"X"`` (B Z U O become X: B and Z are
  ambiguous, U and O rare enough that many models never saw them) or ``"error"``;
* lowercase: ``lowercase="upper"`` reads it as uppercase (many FASTA files are lowercase) or ``"error"``.
  A3M insert columns are lowercase too; ``zoo.domains.protein.readers.read_a3m`` decides what they mean;
* gaps ``-`` and ``.``: ``gaps="error"`` (a single sequence has none), ``"keep"`` (both become the ``-`` id),
  ``"drop"`` (removed);
* one trailing ``*`` (a stop in translated CDS files): ``stop="strip"`` removes it, ``stop="error"`` raises.
  A ``*`` anywhere else is an error: it means the translation ran through a stop codon.

Any other character (digits, J, whitespace, non-ASCII) is an error naming the character and its 0-based
position in the input, with the option that would accept it where there is one; so is an empty sequence.
Silently mapping such characters to X would hide a formatting problem in the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from zoo.vocab import PROTEIN_TOKENS, pad_encoded

_ID = {token: i for i, token in enumerate(PROTEIN_TOKENS)}
#: The 20 standard amino acids, in vocabulary order.
STANDARD = "ACDEFGHIKLMNPQRSTVWY"
#: Non-standard residues with their own ids: unknown, D/N, E/Q, selenocysteine, pyrrolysine.
NONSTANDARD = "XBZUO"
GAPS = "-."

Nonstandard = Literal["keep", "X", "error"]
Lowercase = Literal["upper", "error"]
Gaps = Literal["error", "keep", "drop"]
Stop = Literal["strip", "error"]

_INVALID = -1
_DROP = -2
_HINTS = {
    "J": "J (leucine or isoleucine) is not in the vocabulary: replace it with X",
    " ": "whitespace is not stripped: join the sequence lines first",
    "\t": "whitespace is not stripped: join the sequence lines first",
    "\n": "whitespace is not stripped: join the sequence lines first",
    "\r": "whitespace is not stripped: join the sequence lines first",
}
_OPTIONS = {
    "nonstandard": ("keep", "X", "error"),
    "lowercase": ("upper", "error"),
    "gaps": ("error", "keep", "drop"),
    "stop": ("strip", "error"),
}


def _lookup(nonstandard: Nonstandard, lowercase: Lowercase, gaps: Gaps) -> np.ndarray:
    table = np.full(256, _INVALID, dtype=np.int16)
    letters = {aa: _ID[aa] for aa in STANDARD}
    if nonstandard == "keep":
        letters.update({aa: _ID[aa] for aa in NONSTANDARD})
    elif nonstandard == "X":
        letters.update({aa: _ID["X"] for aa in NONSTANDARD})
    for letter, token in letters.items():
        table[ord(letter)] = token
        if lowercase == "upper":
            table[ord(letter.lower())] = token
    if gaps != "error":
        for gap in GAPS:
            table[ord(gap)] = _ID["-"] if gaps == "keep" else _DROP
    return table


class ProteinTokenizer:
    """Amino-acid strings <-> token ids of ``zoo.vocab.PROTEIN_TOKENS``.

    Args:
        nonstandard: X B Z U O keep their own ids (``"keep"``), all become X (``"X"``), or raise (``"error"``).
        lowercase: ``"upper"`` reads lowercase residues as uppercase; ``"error"`` raises (e.g. to catch A3M
            insert columns that were not removed).
        gaps: ``-`` and ``.`` raise (``"error"``), become the ``-`` id (``"keep"``), or are removed (``"drop"``).
        stop: one trailing ``*`` is removed (``"strip"``) or raises (``"error"``); an inner ``*`` always raises.
    """

    def __init__(
        self,
        nonstandard: Nonstandard = "keep",
        lowercase: Lowercase = "upper",
        gaps: Gaps = "error",
        stop: Stop = "strip",
    ):
        for name, value in (("nonstandard", nonstandard), ("lowercase", lowercase), ("gaps", gaps), ("stop", stop)):
            if value not in _OPTIONS[name]:
                allowed = ", ".join(repr(v) for v in _OPTIONS[name])
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        self.nonstandard = nonstandard
        self.lowercase = lowercase
        self.gaps = gaps
        self.stop = stop
        self._encode = _lookup(nonstandard, lowercase, gaps)
        self._chars = np.array([ord(t) if len(t) == 1 else ord("?") for t in PROTEIN_TOKENS], dtype=np.uint8)

    cls_id = _ID["[CLS]"]
    """Id of ``[CLS]``."""
    sep_id = _ID["[SEP]"]
    """Id of ``[SEP]`` (between homologs in a context)."""
    bos_id = _ID["[BOS]"]
    """Id of ``[BOS]``."""
    mask_id = _ID["[MASK]"]
    """Id of ``[MASK]`` (masked LM; the hole in a fill-in-the-middle layout)."""
    pad_id = _ID["[PAD]"]
    """Id of ``[PAD]``, used by ``batch_encode``."""
    unk_id = _ID["[UNK]"]
    """Id of ``[UNK]`` (never produced by ``encode``)."""
    eos_id = _ID["[EOS]"]
    """Id of ``[EOS]``."""
    fim_id = _ID["[FIM]"]
    """Id of ``[FIM]`` (start of the moved span in a fill-in-the-middle layout)."""
    gap_id = _ID["-"]
    """Id of the alignment gap ``-``."""
    x_id = _ID["X"]
    """Id of ``X`` (unknown residue)."""
    standard_ids = np.array([_ID[aa] for aa in STANDARD], dtype=np.int64)
    """Ids of the 20 standard amino acids, in the order of ``STANDARD`` (ACDEFGHIKLMNPQRSTVWY)."""

    @property
    def vocab_size(self) -> int:
        """Number of tokens (unpadded; models pad the embedding to a multiple of 8)."""
        return len(PROTEIN_TOKENS)

    def encode(self, seq: str | bytes, dtype: np.dtype | type = np.int64) -> np.ndarray:
        """Token ids ``[L]`` of a protein sequence (``dtype`` int64 unless asked otherwise).

        ``L`` is the number of residues after the policies (a stripped stop and dropped gaps are not counted).
        """
        raw = self._bytes(seq)
        if not raw:
            raise ValueError("empty protein sequence: there are no residues to encode")
        stripped = raw[:-1] if raw.endswith(b"*") and self.stop == "strip" else raw
        ids = self._encode[np.frombuffer(stripped, dtype=np.uint8)]
        bad = ids == _INVALID
        if bad.any():
            position = int(np.argmax(bad))
            raise self._error(chr(raw[position]), position, at_end=position == len(raw) - 1)
        if self.gaps == "drop":
            ids = ids[ids != _DROP]
        if ids.size == 0:
            raise ValueError(
                f"protein sequence {raw.decode('ascii')[:30]!r} has no residues once its stop and gaps are removed"
            )
        return ids.astype(dtype)

    def decode(self, ids: np.ndarray | Sequence[int], skip_special: bool = False) -> str:
        """Uppercase string of token ids ``[L]``; special tokens appear as ``[PAD]``, ``[EOS]`` etc. unless skipped.

        The gap ``-`` is a residue-like character, not a special token: it is always written.
        """
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"decode takes one sequence of ids [L], got shape {ids.shape}")
        n = len(PROTEIN_TOKENS)
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            bad = ids[(ids < 0) | (ids >= n)][0]
            raise ValueError(f"token id {bad} is outside the protein vocabulary [0, {n})")
        special = self._chars[ids] == ord("?")
        if skip_special:
            ids, special = ids[~special], special[~special]
        if not special.any():
            return self._chars[ids].tobytes().decode("ascii")
        return "".join(PROTEIN_TOKENS[i] for i in ids.tolist())

    def batch_encode(
        self, seqs: Sequence[str], pad_to: int | None = None, padding_side: Literal["right", "left"] = "right"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids ``[B, T]`` (int64, padded with ``[PAD]``) and mask ``[B, T]`` (bool, True on residues).

        ``T`` is ``pad_to`` or the longest sequence; a sequence longer than ``pad_to`` is an error, not
        silently truncated. ``padding_side="right"`` keeps position ``t`` of every row at column ``t`` (what a
        causal model needs for its outputs to ignore the padding); ``"left"`` aligns the sequences' ends.
        Errors name the sequence's index in ``seqs``.
        """
        encoded = []
        for i, seq in enumerate(seqs):
            try:
                encoded.append(self.encode(seq))
            except ValueError as error:
                raise ValueError(f"sequence {i}: {error}") from None
        return pad_encoded(encoded, self.pad_id, pad_to, padding_side, "residues")

    def _bytes(self, seq: str | bytes) -> bytes:
        if isinstance(seq, str):
            try:
                return seq.encode("ascii")
            except UnicodeEncodeError as error:
                raise self._error(seq[error.start], error.start, at_end=False) from None
        return bytes(seq)

    def _error(self, char: str, position: int, at_end: bool) -> ValueError:
        message = f"invalid protein character {char!r} at position {position}"
        return ValueError(f"{message}. {self._hint(char, at_end)}")

    def _hint(self, char: str, at_end: bool) -> str:
        if char == "*":
            if at_end:
                return "'*' is a stop codon: strip a trailing stop with ProteinTokenizer(stop='strip')"
            return "'*' is a stop codon inside the sequence: the translation ran through a stop; cut it there"
        if char in GAPS:
            return f"{char!r} is an alignment gap: accept gaps with ProteinTokenizer(gaps='keep') or gaps='drop'"
        if char.islower() and char.upper() in STANDARD + NONSTANDARD and self.lowercase == "error":
            return "lowercase residue: read it as uppercase with ProteinTokenizer(lowercase='upper')"
        if char.upper() in NONSTANDARD:
            return (
                f"{char.upper()!r} is a non-standard residue: give it its own id with ProteinTokenizer("
                "nonstandard='keep') or map it to X with nonstandard='X'"
            )
        hint = _HINTS.get(char.upper())
        if hint:
            return hint
        return (
            f"allowed: {STANDARD} (either case), {NONSTANDARD} (option nonstandard), gaps '-' '.' (option gaps), "
            "one trailing '*' (option stop)"
        )
