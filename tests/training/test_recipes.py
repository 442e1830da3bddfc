"""Every shipped recipe parses against the real signatures; bad recipes fail before training, naming the key."""

import numpy as np
import pytest
import yaml

from zoo.cli import main
from zoo.training.recipes import RecipeNotFoundError, copy_recipe, list_recipes, recipe_file, recipe_text

RECIPES = list_recipes()


def test_recipes_are_shipped_for_every_genomics_entry():
    for name in ("hyenadna-tiny", "hybridna-small", "caduceus-small", "dna-xlstm-small"):
        assert f"genomics/{name}/pretrain" in RECIPES
    assert "debug/genomics-causal" in RECIPES and "debug/genomics-masked" in RECIPES
    assert {"debug/genomics-classify", "genomics/hyenadna-tiny/finetune-oct4-mafk"} <= set(RECIPES)
    assert {"genomics/hybridna-small/pretrain-ddp", "genomics/hybridna-small/pretrain-fsdp2"} <= set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_passes_print_config(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", f"recipe://{name}", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    source = yaml.safe_load(recipe_text(name))
    # The parsed config carries the recipe's own choices (not just defaults).
    assert printed["model"]["class_path"] == source["model"]["class_path"]
    assert printed["model"]["init_args"]["entry"] == source["model"]["init_args"]["entry"]
    for key, value in source["data"]["init_args"].items():
        assert printed["data"]["init_args"][key] == value, f"data.{key}"
    assert printed["checkpoint"]["save_last"] is True, "the forced checkpoint callback keeps last.ckpt"


def test_later_flags_override_the_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--config", "recipe://debug/genomics-causal", "--data.init_args.window", "128", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]["window"] == 128


def test_recipes_cli_lists_shows_and_copies(capsys, tmp_path):
    assert main(["recipes", "list"]) == 0
    assert "recipe://genomics/hyenadna-tiny/pretrain" in capsys.readouterr().out
    assert main(["recipes", "show", "debug/genomics-causal"]) == 0
    assert "entry: hyenadna-tiny" in capsys.readouterr().out
    assert main(["recipes", "cp", "recipe://debug/genomics-causal", str(tmp_path)]) == 0
    assert (tmp_path / "genomics-causal.yaml").read_text() == recipe_text("debug/genomics-causal")
    assert copy_recipe("debug/genomics-masked", tmp_path / "x.yaml").read_text() == recipe_text("debug/genomics-masked")


def test_unknown_recipe_names_close_matches():
    with pytest.raises(RecipeNotFoundError, match="Did you mean: genomics/hyenadna-tiny/pretrain"):
        recipe_file("recipe://genomics/hyenadna-tiny/pretrian")


def _fails(argv, capsys) -> str:
    """Run a bad command; it must stop with a non-zero exit before training and return what it printed."""
    try:
        code = main(argv)
    except SystemExit as exit_info:  # jsonargparse reports parse errors by exiting
        code = exit_info.code
    assert code not in (0, None)
    captured = capsys.readouterr()
    return captured.out + captured.err


BASE = ["fit", "--config", "recipe://debug/genomics-causal"]


def test_unknown_key_is_named(capsys, tmp_path):
    recipe = yaml.safe_load(recipe_text("debug/genomics-causal"))
    recipe["data"]["init_args"]["windw"] = 128
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert "windw" in _fails(["fit", "--config", str(path)], capsys)


def test_wrong_type_is_named(capsys):
    out = _fails([*BASE, "--data.init_args.window", "long"], capsys)
    assert "window" in out and "long" in out


def test_missing_recipe_file_is_named(capsys, tmp_path):
    assert "nope.yaml" in _fails(["fit", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert "no shipped recipe recipe://genomics/nope/pretrain" in _fails(
        ["fit", "--config", "recipe://genomics/nope/pretrain"], capsys
    )


def test_unknown_entry_is_named_with_close_matches(capsys):
    out = _fails([*BASE, "--model.init_args.entry", "hyenadna-tny"], capsys)
    assert "model.entry" in out and "hyenadna-tiny" in out


def test_bad_data_value_is_named_before_training(capsys):
    out = _fails([*BASE, "--data.init_args.mask_prob", "1.5"], capsys)
    assert "data.mask_prob" in out


#: Debug recipes that read a file the user names rather than fetched data (tested below without the network).
FILE_RECIPES = ("debug/genomics-classify",)


@pytest.mark.data
@pytest.mark.parametrize("name", [r for r in RECIPES if r.startswith("debug/") and r not in FILE_RECIPES])
def test_debug_recipe_runs_fast_dev_run_on_cpu(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", f"recipe://{name}", "--trainer.fast_dev_run", "2"]) == 0


def test_classify_debug_recipe_fine_tunes_on_a_csv(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    rows = ["sequence,label"] + [f"{''.join(rng.choice(list('ACGT'), size=40))},{i % 2}" for i in range(40)]
    (tmp_path / "toy.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.chdir(tmp_path)
    argv = ["fit", "--config", "recipe://debug/genomics-classify", "--data.init_args.path", "toy.csv"]
    assert main([*argv, "--trainer.fast_dev_run", "2"]) == 0
