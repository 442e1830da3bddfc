"""One generic test over every registered entry (timm-style): build, forward/backward, step, card."""

from importlib.resources import files

import pytest
import torch
import yaml

import zoo
from zoo.api import parameter_count
from zoo.registry import get_entry
from zoo.testing import assert_close
from zoo.training.recipes import recipe_text

NAMES = zoo.list_models()
# Official language models past 150M parameters (mamba-370m ... xlstm-7b) would take most of CI's memory and
# minutes to initialise and run; their architectures are checked on the meta device against the official
# code (tests/hub/test_convert_transformers.py), and the same code paths run here at 130M.
RUNNABLE = [name for name in NAMES if parameter_count(get_entry(name)) <= 150_000_000]


def _inputs(model, length=40):
    vocab = model.config.vocab
    if vocab is None:
        return {"inputs_embeds": torch.randn(2, length, model.d_model)}
    return {"input_ids": torch.randint(7, model.config.n_tokens, (2, length))}


@pytest.mark.parametrize("name", RUNNABLE)
def test_entry_builds_runs_forward_and_backward(name):
    model = zoo.load(name, pretrained=False)
    out = model(**_inputs(model))
    target = out.logits if out.logits is not None else out.hidden
    assert torch.isfinite(target).all()
    target.float().pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), "every parameter gets a finite gradient"


@pytest.mark.parametrize("name", RUNNABLE)
def test_entry_step_matches_forward_when_causal(name):
    model = zoo.load(name, pretrained=False).eval()
    inputs = _inputs(model, length=6)
    with torch.no_grad():
        out = model(**inputs)
        if not model.backbone.causal or model.config.rc_equivariant:
            with pytest.raises(RuntimeError, match="both directions"):
                model.step(next(iter(inputs.values()))[:, 0], None)
            return
        seq = next(iter(inputs.values()))
        state, steps = model.init_state(2), []
        for t in range(seq.shape[1]):
            step = model.step(seq[:, t], state)
            state = step.state
            steps.append(step.logits if step.logits is not None else step.hidden)
    expected = out.logits if out.logits is not None else out.hidden
    assert_close(name, expected, torch.stack(steps, 1), 1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_entry_has_card_and_declares_its_recipe(name):
    entry = get_entry(name)
    assert entry.card == f"{name}.md", "every entry ships a model card template"
    card = files("zoo.model_cards").joinpath(entry.card).read_text()
    assert card.startswith("---\n") and "library_name: seqzoo" in card and f"license: {entry.license.lower()}" in card
    if entry.domain == "forecasting":
        assert entry.recipe == f"recipe://forecasting/{name}/etth1-96"
        recipe = yaml.safe_load(recipe_text(entry.recipe))
        assert recipe["model"]["init_args"]["entry"] == name, "the entry's recipe trains that entry"
        assert recipe["data"]["init_args"]["dataset"] == "etth1"
        return
    if entry.domain == "protein":
        assert entry.recipe == f"recipe://protein/{name}/pretrain"
        recipe = yaml.safe_load(recipe_text(entry.recipe))
        assert recipe["model"]["init_args"]["entry"] == name, "the entry's recipe trains that entry"
        return
    if entry.weights is not None and entry.weights.source != "seqzoo":
        # Another project pretrained it; its fine-tuning recipes land with the genomics tasks (issue 6).
        assert entry.recipe is None, "a declared recipe must exist"
        return
    # An entry with trained weights names the recipe that produced them; the others their default pretraining.
    stage = "pretrain-corpus" if entry.weights is not None else "pretrain"
    assert entry.recipe == f"recipe://genomics/{name}/{stage}"
    recipe = yaml.safe_load(recipe_text(entry.recipe))
    assert recipe["model"]["init_args"]["entry"] == name, "the entry's recipe trains that entry"
