"""The wheel maps the top-level folders into the single import root ``zoo`` and ships its data."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("seqzoo-*.whl")
    return path


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


def test_wheel_holds_only_the_zoo_import_root(wheel_names):
    roots = {name.split("/")[0] for name in wheel_names}
    dist_info = {r for r in roots if r.endswith(".dist-info")}
    assert roots - dist_info == {"zoo"}, (
        f"unexpected top-level entries: {sorted(roots - dist_info - {'zoo'})}"
    )


def test_wheel_maps_kernels_domains_recipes_and_cards(wheel_names):
    for module in (
        "zoo/__init__.py",
        "zoo/kernels/causal_conv1d/reference.py",
        "zoo/domains/__init__.py",
        "zoo/recipes/__init__.py",
        "zoo/model_cards/__init__.py",
        "zoo/kernels/README.md",
    ):
        assert module in wheel_names, module
    assert not any(name.startswith(("kernels/", "domains/", "tests/")) for name in wheel_names)


def test_every_recipe_and_model_card_is_package_data(wheel_names):
    data = [p for p in (ROOT / "recipes").rglob("*.yaml")] + [p for p in (ROOT / "model_cards").glob("*.md")]
    assert any(p.suffix == ".md" for p in data), "model_cards/ holds no cards"
    for path in data:
        folder = "zoo/recipes" if path.is_relative_to(ROOT / "recipes") else "zoo/model_cards"
        base = ROOT / folder.split("/")[1]
        expected = f"{folder}/{path.relative_to(base).as_posix()}"
        assert expected in wheel_names, f"{expected} missing from the wheel"


def test_recipes_resolve_from_inside_the_wheel(wheel, tmp_path):
    # A wheel is a zip: importing from it directly proves recipe:// never relies on the source tree.
    script = """
import contextlib, pathlib, zoo
from zoo.training.recipes import list_recipes, resolve_config_args
assert zoo.__file__.startswith(WHEEL), zoo.__file__
assert "genomics/hyenadna-tiny/pretrain" in list_recipes()
with contextlib.ExitStack() as stack:
    _, path = resolve_config_args(["--config", "recipe://genomics/hyenadna-tiny/pretrain"], stack)
    assert "entry: hyenadna-tiny" in pathlib.Path(path).read_text()
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", f"WHEEL = {str(wheel)!r}\n{script}"],
        env={**os.environ, "PYTHONPATH": str(wheel), "PYTHONSAFEPATH": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
