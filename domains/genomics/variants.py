"""Zero-shot variant effect scores from a DNA language model (no training on labels).

Two scores, both in nats, positive = the model finds the variant more likely than the reference:

* ``"llr"`` (causal LMs): ``log p(alt sequence) - log p(ref sequence)``, each the sum of next-base
  log-probabilities (``sequence_log_likelihood``) over the whole, possibly windowed, sequence, so a variant
  is also judged by how it changes the predictions of the bases after it.
* ``"masked-marginal"`` (bidirectional / masked LMs such as caduceus-small): the mutated positions are
  replaced by ``[MASK]`` in the reference and ``sum_i log p(alt_i) - log p(ref_i)`` is read at them
  (Meier et al. 2021, ESM-1v's masked marginal).

``method="auto"`` picks ``llr`` for causal single-strand models and ``masked-marginal`` otherwise. The
first base of a sequence has no prediction (nothing precedes it; no ``[BOS]`` is added, as in seqzoo's
DNA training windows), so it adds nothing to a log-likelihood; bases that are ``N`` are no training
target (as in ``inference.score_sequence``) and are skipped too.

Variants are substitutions only: ``"A12G"`` (reference base, 1-based position, alternative base),
``"A12G:C15T"`` for several bases changed together, or a VCF-like DataFrame with ``pos`` (1-based),
``ref``, ``alt`` (equal lengths: a multi-base ``ref``/``alt`` substitutes consecutive bases; ``chrom`` and
other columns are ignored).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from zoo.domains.genomics.inference import sequence_text
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.embedding import evaluating, length_batches, pad_batch, pads_safely, token_ids
from zoo.model import SeqModel
from zoo.vocab import DNA_TOKENS

Method = Literal["auto", "llr", "masked-marginal"]
METHODS = ("auto", "llr", "masked-marginal")

_ID = {token: i for i, token in enumerate(DNA_TOKENS)}
N_ID, MASK_ID = _ID["N"], _ID["[MASK]"]
_SUBSTITUTION = re.compile(r"([ACGTN])([0-9]+)([ACGTN])", re.IGNORECASE)
_FORMAT = "'A12G' (reference base, 1-based position, alternative base) or 'A12G:C15T' for several bases"


@dataclass(frozen=True)
class Variant:
    """One substitution of one or more bases of a reference."""

    name: str
    """Canonical ``"A12G"`` / ``"A12G:C15T"`` string (1-based positions, ascending)."""
    positions: tuple[int, ...]
    """0-based positions of the changed bases, ascending."""
    ref: str
    """Reference bases at ``positions`` (uppercase)."""
    alt: str
    """Alternative bases at ``positions`` (uppercase)."""


@dataclass(frozen=True)
class _Job:
    """One score to compute: ``window`` ids ``[T]`` with ``alt_ids`` written at ``positions`` (window-relative)."""

    window: np.ndarray
    positions: np.ndarray
    alt_ids: np.ndarray


def sequence_log_likelihood(
    model: SeqModel, seqs: Any, batch_size: int = 32, rc_average: bool = False
) -> np.ndarray:
    """Total log-likelihood in nats, float64 ``[N]``, of each sequence under a causal DNA language model.

    ``sum_{t=1}^{T-1} log p(x_t | x_<t)``: the first base has no prediction and ``N`` bases are skipped
    (module docstring). ``seqs``: strings or token-id arrays (as ``SeqModel.embed``). ``rc_average=True``
    returns the mean of the sequence's and its reverse complement's log-likelihoods (strand-symmetric).
    Sequences are batched by length with right padding, which a causal model never reads.
    """
    _check_dna(model)
    if not pads_safely(model):
        raise ValueError(
            "sequence_log_likelihood needs a causal language model; this one reads both directions "
            "(bidirectional / RC-equivariant): score variants with method='masked-marginal' instead"
        )
    ids = token_ids(model, seqs)
    return _log_likelihoods(model, ids, batch_size, rc_average, what="sequence")


def score_variants(
    model: SeqModel,
    reference: Any,
    variants: list[str] | pd.DataFrame,
    method: Method = "auto",
    window: int | None = None,
    batch_size: int = 32,
    rc_average: bool = False,
) -> pd.DataFrame:
    """Zero-shot scores of substitutions in ``reference``: DataFrame with ``variant, score, pos, ref, alt``.

    ``reference``: str / bytes / ``Bio.Seq`` / ``SeqRecord`` of ACGTN (either case). ``window``: score each
    variant on ``window`` bases centred on it (the middle of its changed bases), shifted inward at the
    reference's ends (``variant_window``); None scores the whole reference. ``rc_average`` (llr only) averages
    both strands. Rows keep the input order (and a DataFrame's index); ``pos`` is the first changed base
    (1-based), ``ref`` / ``alt`` the changed bases in position order.
    """
    ref_text, ref_ids = _reference(reference)
    index = variants.index if isinstance(variants, pd.DataFrame) else None
    parsed = parse_variants(variants, ref_text)
    jobs = []
    for variant in parsed:
        start, stop = variant_window(variant.positions, len(ref_ids), window)
        positions = np.array(variant.positions) - start
        alt_ids = DNATokenizer().encode(variant.alt)
        jobs.append(_Job(ref_ids[start:stop], positions, alt_ids))
    fix = "pass a smaller window" if window else "pass window=<= max_seq_len to score the bases around each variant"
    scores = _score(model, jobs, method, batch_size, rc_average, fix)
    return pd.DataFrame(
        {
            "variant": [v.name for v in parsed],
            "score": scores,
            "pos": [v.positions[0] + 1 for v in parsed],
            "ref": [v.ref for v in parsed],
            "alt": [v.alt for v in parsed],
        },
        index=index,
    )


def score_sequences_against(
    model: SeqModel,
    reference: Any,
    sequences: list[str],
    method: Method = "auto",
    batch_size: int = 32,
    rc_average: bool = False,
) -> np.ndarray:
    """Scores float64 ``[N]`` of full-length variant sequences (a mutant library) against ``reference``.

    Each sequence has the reference's length. ``llr``: ``LL(sequence) - LL(reference)``. ``masked-marginal``:
    every position where the sequence differs is masked at once in the reference, and
    ``sum log p(seq base) - log p(ref base)`` is read there — one forward per sequence, as ESM-1v scores
    multi-mutants (masking one site at a time would need one forward per site and ignore nothing the
    masked model could use: the other sites are unknown to it either way). A sequence equal to the
    reference scores 0.
    """
    _, ref_ids = _reference(reference)
    tokenizer = DNATokenizer()
    jobs = []
    for i, seq in enumerate(sequences):
        try:
            ids = tokenizer.encode(sequence_text(seq))
        except ValueError as error:
            raise ValueError(f"sequence {i}: {error}") from None
        if len(ids) != len(ref_ids):
            raise ValueError(
                f"sequence {i} has {len(ids)} bases, the reference {len(ref_ids)}: score_sequences_against "
                "compares equal-length sequences (substitutions only)"
            )
        positions = np.flatnonzero(ids != ref_ids)
        jobs.append(_Job(ref_ids, positions, ids[positions]))
    return _score(model, jobs, method, batch_size, rc_average, "score a shorter region")


def variant_window(positions: tuple[int, ...], length: int, window: int | None) -> tuple[int, int]:
    """``(start, stop)`` of the ``window`` bases scored for a variant at 0-based ``positions``.

    Centred on the middle of the changed bases (``start = centre - window // 2``), then shifted to lie inside
    ``[0, length)``; the whole reference when ``window`` is None or not shorter than it.
    """
    if window is None or window >= length:
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive number of bases, got {window}")
        return 0, length
    if window < 1:
        raise ValueError(f"window must be a positive number of bases, got {window}")
    span = positions[-1] - positions[0] + 1
    if span > window:
        raise ValueError(f"the variant spans {span} bases (1-based {positions[0] + 1}..{positions[-1] + 1}), "
                         f"more than window={window}; use a larger window")  # fmt: skip
    centre = (positions[0] + positions[-1]) // 2
    start = min(max(0, centre - window // 2), length - window)
    return start, start + window


def parse_variants(variants: list[str] | pd.DataFrame, reference: str) -> list[Variant]:
    """``Variant`` objects of substitution strings or a ``pos, ref, alt`` DataFrame, checked against ``reference``."""
    reference = reference.upper()
    if isinstance(variants, pd.DataFrame):
        missing = [c for c in ("pos", "ref", "alt") if c not in variants.columns]
        if missing:
            raise ValueError(f"the variants DataFrame lacks column(s) {missing}; it needs pos (1-based), ref, alt "
                             f"(has {list(variants.columns)})")  # fmt: skip
        rows = zip(variants["pos"].tolist(), variants["ref"].tolist(), variants["alt"].tolist())
        return [_from_row(pos, ref, alt, row, reference) for row, (pos, ref, alt) in enumerate(rows)]
    if isinstance(variants, str):
        raise TypeError(f"variants must be a list of strings like {_FORMAT}, or a DataFrame; got one string "
                        f"{variants!r}: wrap it in a list")  # fmt: skip
    return [_from_string(v, reference) for v in variants]


def _from_string(text: Any, reference: str) -> Variant:
    if not isinstance(text, str):
        raise TypeError(f"variant {text!r} is a {type(text).__name__}; expected a string like {_FORMAT}")
    changes = []
    for part in text.split(":"):
        match = _SUBSTITUTION.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"variant {text!r} is not a substitution like {_FORMAT}")
        changes.append((int(match[2]), match[1].upper(), match[3].upper()))
    return _variant(repr(text), changes, reference)


def _from_row(pos: Any, ref: Any, alt: Any, row: int, reference: str) -> Variant:
    label = f"row {row} (pos={pos!r}, ref={ref!r}, alt={alt!r})"
    # pandas turns an integer column holding NaN into floats: accept 12.0, refuse 12.5 / NaN / True.
    whole = isinstance(pos, (int, np.integer)) or (isinstance(pos, float) and pos.is_integer())
    if isinstance(pos, bool) or not whole:
        raise ValueError(f"variant {label}: pos must be a 1-based integer position")
    if not isinstance(ref, str) or not isinstance(alt, str) or not re.fullmatch("[ACGTN]+", ref + alt, re.I):
        raise ValueError(f"variant {label}: ref and alt must be strings of A, C, G, T, N")
    if len(ref) != len(alt):
        raise ValueError(f"variant {label}: ref and alt differ in length; only substitutions are scored, "
                         "not insertions or deletions")  # fmt: skip
    changes = [(int(pos) + k, r.upper(), a.upper()) for k, (r, a) in enumerate(zip(ref, alt))]
    return _variant(label, changes, reference)


def _variant(label: str, changes: list[tuple[int, str, str]], reference: str) -> Variant:
    """Check 1-based ``(pos, ref, alt)`` changes against the reference; bases with ``ref == alt`` are kept."""
    changes = sorted(changes)
    for pos, ref, _ in changes:
        if not 1 <= pos <= len(reference):
            raise ValueError(f"variant {label}: position {pos} is outside the reference (1..{len(reference)})")
        if reference[pos - 1] != ref:
            raise ValueError(f"variant {label}: the reference has {reference[pos - 1]!r} at position {pos}, "
                             f"not {ref!r}")  # fmt: skip
    seen = [pos for pos, _, _ in changes]
    if len(set(seen)) != len(seen):
        duplicate = next(p for p in seen if seen.count(p) > 1)
        raise ValueError(f"variant {label}: position {duplicate} is changed twice")
    return Variant(
        name=":".join(f"{ref}{pos}{alt}" for pos, ref, alt in changes),
        positions=tuple(pos - 1 for pos, _, _ in changes),
        ref="".join(ref for _, ref, _ in changes),
        alt="".join(alt for _, _, alt in changes),
    )


def _reference(reference: Any) -> tuple[str, np.ndarray]:
    text = sequence_text(reference)
    text = text.decode("ascii", errors="replace") if isinstance(text, bytes) else text
    try:
        ids = DNATokenizer().encode(text)
    except ValueError as error:
        raise ValueError(f"reference: {error}") from None
    if len(ids) == 0:
        raise ValueError("the reference sequence is empty")
    return text, ids


def _check_dna(model: SeqModel) -> None:
    if model.config.vocab != "dna":
        raise ValueError(f"variant scoring needs a DNA model (vocab='dna'), this one has vocab={model.config.vocab!r}")


def _resolve(model: SeqModel, method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    causal = pads_safely(model)
    if method == "auto":
        return "llr" if causal else "masked-marginal"
    if method == "llr" and not causal:
        raise ValueError("method='llr' needs a causal language model; this one reads both directions "
                         "(bidirectional / RC-equivariant): use method='masked-marginal'")  # fmt: skip
    if method == "masked-marginal" and causal:
        raise ValueError("method='masked-marginal' needs a masked (bidirectional) language model; a causal "
                         "model's logits at t predict base t+1, not a masked base t: use method='llr'")  # fmt: skip
    return method


def _score(model: SeqModel, jobs: list[_Job], method: str, batch_size: int, rc_average: bool,
           too_long_fix: str) -> np.ndarray:  # fmt: skip
    _check_dna(model)
    method = _resolve(model, method)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    limit = model.config.max_seq_len
    if jobs and len(jobs[0].window) > limit:
        raise ValueError(f"the scored sequence has {len(jobs[0].window)} bases, more than the model's "
                         f"max_seq_len={limit}; {too_long_fix}")  # fmt: skip
    if method == "llr":
        return _llr(model, jobs, batch_size, rc_average)
    if rc_average:
        raise ValueError("rc_average applies to method='llr'; an RC-equivariant masked model is strand-symmetric "
                         "already")  # fmt: skip
    return _masked_marginal(model, jobs, batch_size)


def _llr(model: SeqModel, jobs: list[_Job], batch_size: int, rc_average: bool) -> np.ndarray:
    """``LL(alt) - LL(window)`` per job; each distinct reference window is scored once."""
    sequences: dict[bytes, int] = {}
    pairs = []
    for job in jobs:
        alt = job.window.copy()
        alt[job.positions] = job.alt_ids
        pairs.append(tuple(sequences.setdefault(s.tobytes(), len(sequences)) for s in (alt, job.window)))
    unique = [np.frombuffer(key, dtype=np.int64) for key in sequences]
    ll = _log_likelihoods(model, unique, batch_size, rc_average, what="variant window")
    return np.array([ll[alt] - ll[ref] for alt, ref in pairs], dtype=np.float64)


def _log_likelihoods(
    model: SeqModel, ids: list[np.ndarray], batch_size: int, rc_average: bool, what: str
) -> np.ndarray:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for i, x in enumerate(ids):
        if len(x) > model.config.max_seq_len:
            raise ValueError(f"{what} {i} has {len(x)} bases, more than the model's max_seq_len="
                             f"{model.config.max_seq_len}; cut it, or stream per-base scores with "
                             "zoo.domains.genomics.inference.score_sequence")  # fmt: skip
    if rc_average:
        tokenizer = DNATokenizer()
        both = _log_likelihoods(model, ids + [tokenizer.reverse_complement(x) for x in ids], batch_size, False, what)
        return (both[: len(ids)] + both[len(ids) :]) / 2
    out = np.zeros(len(ids), dtype=np.float64)
    with evaluating(model):
        for batch in length_batches([len(x) for x in ids], batch_size, mixed_lengths=True):
            inputs, mask = pad_batch(model, [ids[i] for i in batch])  # [B, T]
            log_probs = torch.log_softmax(model(inputs).logits[:, :-1].float(), dim=-1)  # [B, T-1, V]
            targets = inputs[:, 1:]
            per_base = log_probs.gather(-1, targets[..., None])[..., 0]  # [B, T-1]
            scored = mask[:, 1:] & (targets != N_ID)
            out[batch] = (per_base.double() * scored).sum(1).cpu().numpy()
    return out


def _masked_marginal(model: SeqModel, jobs: list[_Job], batch_size: int) -> np.ndarray:
    """``sum log p(alt) - log p(ref)`` at the positions of each job, masked together in its window."""
    scores = np.zeros(len(jobs), dtype=np.float64)
    # Jobs that mask the same positions of the same window share one forward.
    users: dict[bytes, list[int]] = {}
    for k, job in enumerate(jobs):
        if len(job.positions):  # nothing changed: the score stays 0
            masked = job.window.copy()
            masked[job.positions] = MASK_ID
            users.setdefault(masked.tobytes(), []).append(k)
    masked_ids = [np.frombuffer(key, dtype=np.int64) for key in users]
    job_lists = list(users.values())
    with evaluating(model):
        # Bidirectional models read the padding, so only equal lengths share a batch (pads_safely is False).
        for batch in length_batches([len(x) for x in masked_ids], batch_size, mixed_lengths=pads_safely(model)):
            ids, _ = pad_batch(model, [masked_ids[i] for i in batch])
            log_probs = torch.log_softmax(model(ids).logits.float(), dim=-1).double().cpu()  # [B, T, V]
            for row, i in enumerate(batch):
                for k in job_lists[i]:
                    positions = torch.from_numpy(jobs[k].positions)
                    alt, ref = torch.from_numpy(jobs[k].alt_ids), torch.from_numpy(jobs[k].window[jobs[k].positions])
                    scores[k] = float((log_probs[row, positions, alt] - log_probs[row, positions, ref]).sum())
    return scores
