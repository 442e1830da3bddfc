"""Shipped recipes: ``recipe://<domain>/<entry>/<stage>`` -> a YAML file inside the installed package.

Recipes live in ``recipes/`` (installed as ``zoo.recipes``) as ``<domain>/<entry>/<stage>.yaml`` and
``debug/<name>.yaml``; ``importlib.resources`` finds them in a wheel, an editable install or a zip.
"""

from __future__ import annotations

import difflib
import shutil
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

SCHEME = "recipe://"


class RecipeNotFoundError(FileNotFoundError):
    """An unknown ``recipe://`` name; the message lists the closest shipped recipes."""


def _root() -> Traversable:
    return resources.files("zoo.recipes")


def list_recipes() -> list[str]:
    """Every shipped recipe as ``domain/entry/stage`` (or ``debug/name``), sorted."""
    found = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir() and not child.name.startswith(("_", ".")):
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".yaml"):
                found.append(prefix + child.name.removesuffix(".yaml"))

    walk(_root(), "")
    return sorted(found)


def recipe_file(name: str) -> Traversable:
    """The packaged YAML of ``name`` (with or without the ``recipe://`` prefix)."""
    name = name.removeprefix(SCHEME).strip("/").removesuffix(".yaml")
    *folders, stem = name.split("/")
    node = _root()
    for folder in folders:
        node = node / folder
    node = node / f"{stem}.yaml"
    if not node.is_file():
        close = difflib.get_close_matches(name, list_recipes(), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else " See `zoo recipes list`."
        raise RecipeNotFoundError(f"no shipped recipe {SCHEME}{name}.{hint}")
    return node


def recipe_text(name: str) -> str:
    """The YAML text of a shipped recipe."""
    return recipe_file(name).read_text()


def copy_recipe(name: str, destination: str | Path) -> Path:
    """Copy a shipped recipe to ``destination`` (a file, or a folder to put ``<stage>.yaml`` in)."""
    destination = Path(destination)
    source = recipe_file(name)
    if destination.is_dir():
        destination = destination / source.name
    with resources.as_file(source) as path:
        shutil.copyfile(path, destination)
    return destination


def resolve_config_args(argv: list[str], stack) -> list[str]:
    """Replace every ``--config recipe://...`` (or ``--config=recipe://...``) with a real file path.

    ``stack`` is a ``contextlib.ExitStack`` that keeps extracted files alive while the CLI runs (a
    zipped install has no file on disk until ``as_file`` makes one).
    """
    out = []
    expect_value = False
    for arg in argv:
        if expect_value and arg.startswith(SCHEME):
            arg = str(stack.enter_context(resources.as_file(recipe_file(arg))))
        elif arg.startswith(f"--config={SCHEME}"):
            arg = "--config=" + str(stack.enter_context(resources.as_file(recipe_file(arg.split("=", 1)[1]))))
        expect_value = arg == "--config"
        out.append(arg)
    return out
