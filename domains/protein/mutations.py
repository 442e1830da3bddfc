"""Zero-shot scores of amino-acid substitutions from a protein language model (no training on labels).

All scores are in nats; positive means the model prefers the mutant to the wild type. Three methods:

* ``"llr"`` (causal models): ``log p(mutant) - log p(wild type)``, each the sum of next-token log-probabilities
  of the query residues and its ``[EOS]`` in the causal layout (``layout.causal_layout``); homologs given as
  context are read but not scored. A mutation is thus also judged by how it changes the residues after it.
* ``"wt-marginal"``: one pass over the wild type; ``sum_i log p(mut_i) - log p(wt_i)`` read at each mutated
  position ``i`` (Meier et al. 2021, "Language models enable zero-shot prediction of the effects of mutations
  on protein function", the wild-type marginal). For a *causal* model the distribution is the next-token one,
  ``p(x_i | x_<i)``: it conditions on the left side only. A bidirectional model reads ``x_i`` at position ``i``
  of the unmasked input (the model sees the residue it scores, as in Meier et al.).
* ``"masked-marginal"`` (Meier et al. 2021): position ``i`` is hidden and ``log p(mut_i) - log p(wt_i)`` is read
  from the model's prediction for it, one pass per mutated position, shared by all mutations at that position.
  Bidirectional models: ``[MASK]`` at ``i``. Causal models: fill-in-the-middle, ``fim_layout(wt, i, i + 1)``,
  whose ``[FIM]`` logits predict residue ``i`` from both sides (ProtMamba / Prot-xLSTM scoring).

Multi-mutants (``"A42G:L60P"``) are additive over positions for the two marginals, the ProteinGym convention;
``llr`` scores the whole mutant sequence. The default method is ``masked-marginal`` for bidirectional models
and ``llr`` for causal ones.

Context: homolog sequences are laid out before the query (``[BOS] h_1 [SEP] ... h_k [SEP] query``). For causal
models the context runs once and its recurrent ``state`` is carried into every batch (exact: the layers take
and return state); bidirectional models cannot continue a state, so they re-run the context in every batch.
Memory is bounded by ``batch_size`` x (query, plus the context for bidirectional models) either way. All
mutants of one wild type have its length (substitutions only), so batches never need padding.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from zoo.domains.protein.layout import MASK_ID, causal_layout, context_prefix, fim_layout
from zoo.domains.protein.tokenizer import STANDARD, ProteinTokenizer
from zoo.embedding import evaluating, pads_safely
from zoo.model import SeqModel
from zoo.vocab import PROTEIN_TOKENS

Method = Literal["wt-marginal", "masked-marginal", "llr"]
METHODS = ("wt-marginal", "masked-marginal", "llr")

_ID = {token: i for i, token in enumerate(PROTEIN_TOKENS)}
_SUBSTITUTION = re.compile(r"([A-Z])(-?[0-9]+)([A-Z])")
_FORMAT = "'A42G' (wild-type residue, position, mutant residue) or 'A42G:L60P' for a multi-mutant"


@dataclass(frozen=True)
class Mutation:
    """One single or multiple substitution of a wild-type protein."""

    name: str
    """Canonical ``"A42G"`` / ``"A42G:L60P"`` in the caller's numbering, positions ascending."""
    positions: tuple[int, ...]
    """0-based indices into the wild type, ascending."""
    wt: str
    """Wild-type residues at ``positions``."""
    mut: str
    """Mutant residues at ``positions``."""


def parse_mutations(mutations: Sequence[str] | pd.DataFrame, wildtype: str, offset: int = 1) -> list[Mutation]:
    """``Mutation`` objects of ``"A42G[:L60P...]"`` strings, checked against ``wildtype``.

    ``offset`` is the number of the wild type's first residue (1 for 1-based numbering; DMS files often start
    elsewhere). A DataFrame needs a ``mutation`` column (or ProteinGym's ``mutant``). Mutant residues are the 20
    standard amino acids.
    """
    wildtype = wildtype.upper()
    if isinstance(mutations, pd.DataFrame):
        column = next((c for c in ("mutation", "mutant") if c in mutations.columns), None)
        if column is None:
            raise ValueError(f"the mutations DataFrame needs a 'mutation' (or 'mutant') column of strings like "
                             f"{_FORMAT}; it has {list(mutations.columns)}")  # fmt: skip
        mutations = mutations[column].tolist()
    elif isinstance(mutations, str):
        raise TypeError(f"mutations must be a list of strings like {_FORMAT}; got one string {mutations!r}: "
                        "wrap it in a list")  # fmt: skip
    mutations = list(mutations)
    if not mutations:
        raise ValueError(f"no mutations to score: pass a non-empty list of strings like {_FORMAT}")
    return [_parse(text, wildtype, offset) for text in mutations]


def _parse(text: Any, wildtype: str, offset: int) -> Mutation:
    if not isinstance(text, str):
        raise TypeError(f"mutation {text!r} is a {type(text).__name__}; expected a string like {_FORMAT}")
    changes = []
    for part in text.split(":"):
        match = _SUBSTITUTION.fullmatch(part.strip().upper())
        if match is None:
            raise ValueError(f"mutation {text!r} is not a substitution like {_FORMAT}")
        wt, number, mut = match[1], int(match[2]), match[3]
        if mut not in STANDARD:
            raise ValueError(f"{part}: mutant residue {mut!r} is not one of the 20 standard amino acids {STANDARD}")
        index = number - offset
        if not 0 <= index < len(wildtype):
            last = offset + len(wildtype) - 1
            raise ValueError(f"{part}: position {number} is outside the wild type ({offset}..{last}, offset={offset})")
        if wildtype[index] != wt:
            raise ValueError(f"{part}: position {number} is {wildtype[index]} in the wild type, not {wt}"
                             + (f" (numbering starts at offset={offset})" if offset != 1 else ""))  # fmt: skip
        changes.append((index, wt, mut))
    changes.sort()
    indices = [i for i, _, _ in changes]
    if len(set(indices)) != len(indices):
        twice = next(i for i in indices if indices.count(i) > 1)
        raise ValueError(f"mutation {text!r}: position {twice + offset} is mutated twice")
    return Mutation(
        name=":".join(f"{wt}{i + offset}{mut}" for i, wt, mut in changes),
        positions=tuple(indices),
        wt="".join(wt for _, wt, _ in changes),
        mut="".join(mut for _, _, mut in changes),
    )


def score_mutations(
    model: SeqModel,
    wildtype: str,
    mutations: Sequence[str] | pd.DataFrame,
    method: Method | None = None,
    context: Sequence[str] | None = None,
    batch_size: int = 16,
    offset: int = 1,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Zero-shot scores of substitutions of ``wildtype``: DataFrame ``mutation, score, n_mutations``.

    ``method``: see the module docstring (None: ``masked-marginal`` for bidirectional models, ``llr`` for causal
    ones). ``context``: homolog sequences laid out before the query. ``offset``: number of the wild type's first
    residue in the mutation strings. ``device``: the model is moved there (and stays). Rows keep the input order
    (and a DataFrame's index); ``mutation`` is the canonical string (positions ascending).
    """
    _check_model(model)
    method = _resolve(model, method)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    parsed = parse_mutations(mutations, wildtype, offset)
    tokenizer = ProteinTokenizer()
    try:
        wt_ids = tokenizer.encode(wildtype)
    except ValueError as error:
        raise ValueError(f"wild type: {error}") from None
    context_ids = []
    for k, homolog in enumerate(context or ()):
        try:
            context_ids.append(ProteinTokenizer(gaps="drop").encode(homolog))
        except ValueError as error:
            raise ValueError(f"context sequence {k}: {error}") from None
    if device is not None:
        model.to(device)
    scorer = {"llr": _llr, "wt-marginal": _wt_marginal, "masked-marginal": _masked_marginal}[method]
    with evaluating(model):
        scores = scorer(model, wt_ids, context_ids, parsed, batch_size)
    index = mutations.index if isinstance(mutations, pd.DataFrame) else None
    return pd.DataFrame(
        {"mutation": [m.name for m in parsed], "score": scores, "n_mutations": [len(m.positions) for m in parsed]},
        index=index,
    )


def sequence_log_likelihoods(
    model: SeqModel, queries: Sequence[np.ndarray], context: Sequence[np.ndarray] = (), batch_size: int = 16
) -> np.ndarray:
    """``log p(query [EOS] | [BOS] context)`` float64 ``[N]`` of equal-length token-id queries under a causal model."""
    _check_model(model)
    if not pads_safely(model):
        raise ValueError("sequence log-likelihoods need a causal model; this one reads both directions")
    lengths = {len(q) for q in queries}
    if len(lengths) > 1:
        raise ValueError(f"queries must share one length (mutants of one wild type), got lengths {sorted(lengths)}")
    with evaluating(model):
        return _sequence_ll(model, [np.asarray(q, dtype=np.int64) for q in queries], list(context), batch_size)


def _check_model(model: SeqModel) -> None:
    if model.config.vocab != "protein":
        raise ValueError(f"mutation scoring needs a protein model (vocab='protein'), this one has "
                         f"vocab={model.config.vocab!r}")  # fmt: skip


def _resolve(model: SeqModel, method: str | None) -> str:
    causal = pads_safely(model)
    if method is None:
        return "llr" if causal else "masked-marginal"
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (or None for the model's default), got {method!r}")
    if method == "llr" and not causal:
        raise ValueError("method='llr' needs a causal language model; this one reads both directions: "
                         "use method='masked-marginal' or 'wt-marginal'")  # fmt: skip
    return method


def _continuations(
    model: SeqModel, prefix: np.ndarray, suffixes: list[np.ndarray], batch_size: int
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """Batches ``(indices, log_probs [B, 1 + S, V])`` of ``prefix + suffix`` at positions ``len(prefix) - 1 ..``.

    Row 0 is the output at the last prefix token, row ``k`` the output at ``suffix[k - 1]``. All suffixes have
    one length ``S``. Causal models run the prefix once and continue from its state; bidirectional models see
    the prefix again in every batch (a later token changes their outputs at the prefix, so nothing is shared).
    """
    device = next(model.parameters()).device
    causal = pads_safely(model)
    head = state = None
    if causal:
        out = model(torch.from_numpy(prefix)[None].to(device))
        head, state = out.logits[:, -1:].float(), out.state  # [1, 1, V]
    for start in range(0, len(suffixes), batch_size):
        indices = list(range(start, min(start + batch_size, len(suffixes))))
        suffix = torch.from_numpy(np.stack([suffixes[i] for i in indices])).to(device)  # [B, S]
        if causal:
            out = model(suffix, state=_repeat_state(state, len(indices)))
            logits = torch.cat([head.expand(len(indices), -1, -1), out.logits.float()], dim=1)
        else:
            ids = torch.cat([torch.from_numpy(prefix).to(device).expand(len(indices), -1), suffix], dim=1)
            logits = model(ids).logits[:, len(prefix) - 1 :].float()
        yield indices, torch.log_softmax(logits, dim=-1).double().cpu()


def _repeat_state(state: Any, batch: int) -> Any:
    """A batch-1 recurrent state repeated to ``batch`` rows (mixer states are NamedTuples / dataclasses of tensors)."""
    if isinstance(state, torch.Tensor):
        return state.expand(batch, *state.shape[1:]).contiguous() if state.ndim and state.shape[0] == 1 else state
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # NamedTuple states (MambaState, KVCache ...)
        return type(state)(*(_repeat_state(s, batch) for s in state))
    if isinstance(state, (list, tuple)):
        return type(state)(_repeat_state(s, batch) for s in state)
    if dataclasses.is_dataclass(state):
        fields = {f.name: _repeat_state(getattr(state, f.name), batch) for f in dataclasses.fields(state)}
        return dataclasses.replace(state, **fields)
    return state


def _sequence_ll(model: SeqModel, queries: list[np.ndarray], context: list[np.ndarray], batch_size: int) -> np.ndarray:
    wt_layout, start = causal_layout(queries[0], context)
    prefix = wt_layout[:start]
    suffixes = [causal_layout(q, context)[0][start:] for q in queries]  # query [EOS]
    out = np.zeros(len(queries), dtype=np.float64)
    for indices, log_probs in _continuations(model, prefix, suffixes, batch_size):
        # Output at position t predicts token t + 1: rows 0..S-1 predict the S suffix tokens.
        targets = torch.from_numpy(np.stack([suffixes[i] for i in indices]))  # [B, S]
        out[indices] = log_probs[:, :-1].gather(-1, targets[..., None])[..., 0].sum(1).numpy()
    return out


def _llr(model: SeqModel, wt_ids: np.ndarray, context: list[np.ndarray], parsed: list[Mutation],
         batch_size: int) -> np.ndarray:  # fmt: skip
    sequences = [wt_ids]
    for m in parsed:
        ids = wt_ids.copy()
        ids[list(m.positions)] = [_ID[aa] for aa in m.mut]
        sequences.append(ids)
    ll = _sequence_ll(model, sequences, context, batch_size)
    return ll[1:] - ll[0]


def _additive(parsed: list[Mutation], site_log_probs: dict[int, torch.Tensor]) -> np.ndarray:
    """``sum_i log p_i(mut_i) - log p_i(wt_i)`` from per-position log-probabilities ``[V]``."""
    scores = np.zeros(len(parsed), dtype=np.float64)
    for k, m in enumerate(parsed):
        changes = zip(m.positions, m.wt, m.mut)
        scores[k] = sum(float(site_log_probs[i][_ID[mut]] - site_log_probs[i][_ID[wt]]) for i, wt, mut in changes)
    return scores


def _wt_marginal(model: SeqModel, wt_ids: np.ndarray, context: list[np.ndarray], parsed: list[Mutation],
                 batch_size: int) -> np.ndarray:  # fmt: skip
    ids, start = causal_layout(wt_ids, context)
    _, log_probs = next(_continuations(model, ids[:start], [ids[start:]], 1))
    # Row r is the output at layout position start - 1 + r: the causal prediction of residue r (next token),
    # or, for a bidirectional model, its reading of residue r - 1 (the token at that position).
    shift = 0 if pads_safely(model) else 1
    sites = {i for m in parsed for i in m.positions}
    return _additive(parsed, {i: log_probs[0, i + shift] for i in sites})


def _masked_marginal(model: SeqModel, wt_ids: np.ndarray, context: list[np.ndarray], parsed: list[Mutation],
                     batch_size: int) -> np.ndarray:  # fmt: skip
    sites = sorted({i for m in parsed for i in m.positions})
    prefix = context_prefix(context)
    causal = pads_safely(model)
    suffixes, rows = [], []
    for i in sites:
        if causal:
            ids, middle_start = fim_layout(wt_ids, i, i + 1, context)
            # Only the tokens up to [FIM] matter: its output predicts the moved residue.
            suffixes.append(ids[len(prefix) : middle_start])
            rows.append(middle_start - len(prefix))  # row of the [FIM] output (row 0 = last prefix token)
        else:
            ids, _ = causal_layout(wt_ids, context)
            ids = ids.copy()
            ids[len(prefix) + i] = MASK_ID
            suffixes.append(ids[len(prefix) :])
            rows.append(i + 1)
    site_log_probs = {}
    for indices, log_probs in _continuations(model, prefix, suffixes, batch_size):
        for b, k in enumerate(indices):
            site_log_probs[sites[k]] = log_probs[b, rows[k]]
    return _additive(parsed, site_log_probs)
