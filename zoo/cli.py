"""The ``zoo`` command line.

Own verbs: ``list``, ``info``, ``demo``, ``export``, ``push``, ``download``, ``recipes list|show|cp``.
The LightningCLI subcommands ``fit``, ``validate``, ``test`` and ``predict`` are handed to
``zoo.training.cli.ZooCLI`` with every argument after them (``zoo fit --help`` shows LightningCLI's help).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import get_args

from rich.console import Console
from rich.table import Column, Table

import zoo
from zoo.registry import Domain, UnknownModelError, get_entry

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _short_pattern(pattern: str, width: int = 12) -> str:
    """A layer pattern that fits a table column: ``m×32`` for a uniform stack, else cut to ``width``."""
    if len(pattern) <= width:
        return pattern
    if len(set(pattern)) == 1:
        return f"{pattern[0]}×{len(pattern)}"
    return f"{pattern[: width - 1]}…"


def _cmd_list(args: argparse.Namespace, console: Console) -> int:
    headers = ["name", "domain", "pattern", "context", "weights"]
    rows, descriptions = [], []
    for name in zoo.list_models(args.pattern, domain=args.domain):
        entry = get_entry(name)
        weights = "yes" if entry.weights else "-"
        rows.append([name, entry.domain, _short_pattern(entry.config.backbone.pattern), f"{entry.context:,}", weights])
        descriptions.append(entry.description)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    # One line per model: the short columns keep their width and the description is cut to what is left
    # (rich would otherwise squeeze the short columns or wrap every description word by word); on a narrow
    # terminal the description is left to `zoo info`.
    room = console.width - sum(widths) - 3 * (len(headers) + 1) - 1
    caption = None
    if room >= 24:
        headers.append("description")
        for row, text in zip(rows, descriptions):
            row.append(text if len(text) <= room else text[: room - 1] + "…")
    else:
        caption = "zoo info NAME describes a model (or widen the terminal)"
    table = Table(*(Column(h, no_wrap=True) for h in headers), caption=caption)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0


def _cmd_info(args: argparse.Namespace, console: Console) -> int:
    facts = zoo.info(args.name)
    if args.json:
        console.print_json(json.dumps(facts.__dict__))
        return 0
    table = Table("field", "value", show_header=False)
    for key in (
        "name",
        "family",
        "domain",
        "description",
        "pattern",
        "license",
        "reference",
        "weights",
        "recipe",
        "card",
    ):
        table.add_row(key, str(getattr(facts, key)))
    table.add_row("parameters", f"{facts.parameters:,}")
    table.add_row("context", f"{facts.context:,}")
    console.print(table)
    return 0


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from zoo.demo import run_demo

    run_demo(out_dir=args.out, max_steps=args.max_steps, console=console)
    return 0


def _cmd_export(args: argparse.Namespace, console: Console) -> int:
    from zoo.export import export_checkpoint

    folder = export_checkpoint(
        args.checkpoint,
        args.out_dir,
        metrics_csv=args.metrics,
        base_model=args.base_model,
        dataset=args.dataset,
        run_config=args.run_config,
    )
    console.print(f"exported {args.checkpoint} -> {folder} (config.json, model.safetensors, README.md)")
    return 0


def _cmd_push(args: argparse.Namespace, console: Console) -> int:
    from zoo.hub.publish import push

    try:
        sha = push(args.folder, args.repo_id, tag=args.tag, private=args.private)
    except OSError as err:  # HTTP errors from the Hub, unreachable endpoint, missing files
        return _hub_error(err)
    revision = f"{args.tag} = {sha}" if args.tag else sha
    console.print(f"pushed {args.folder} -> {args.repo_id} at {revision} (zoo.load('hf-hub:{args.repo_id}@{sha}'))")
    return 0


def _cmd_download(args: argparse.Namespace, console: Console) -> int:
    from zoo.api import download

    # The folder alone on stdout, so that `cd $(zoo download NAME)` works.
    try:
        folder = download(args.name, revision=args.revision)
    except OSError as err:  # not found, not cached while offline, corrupt cache, unreachable endpoint
        return _hub_error(err)
    print(folder)
    return 0


def _hub_error(err: OSError) -> int:
    # huggingface_hub's HTTP errors span several lines; their first line names the problem.
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    Console(stderr=True).print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return 2


def _cmd_recipes(args: argparse.Namespace, console: Console) -> int:
    from zoo.training.recipes import SCHEME, copy_recipe, list_recipes, recipe_text

    if args.action == "list":
        for name in list_recipes():
            console.print(f"{SCHEME}{name}", highlight=False)
    elif args.action == "show":
        print(recipe_text(_one_name(args)), end="")
    else:
        console.print(f"wrote {copy_recipe(_one_name(args), args.dest or '.')}")
    return 0


def _one_name(args: argparse.Namespace) -> str:
    if not args.name:
        raise ValueError(f"zoo recipes {args.action} needs a recipe name (see `zoo recipes list`)")
    return args.name


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zoo`` command."""
    parser = argparse.ArgumentParser(prog="zoo", description="seqzoo: long-sequence models behind one API")
    parser.add_argument("--version", action="version", version=f"seqzoo {zoo.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. '*dna*'")
    p.add_argument("--domain", choices=get_args(Domain))
    p.set_defaults(run=_cmd_list)
    p = sub.add_parser("info", help="show one model's size, context, licence and config")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print everything, config included, as JSON")
    p.set_defaults(run=_cmd_info)
    p = sub.add_parser("demo", help="train a small DNA model on the yeast genome, evaluate, plot and export it")
    p.add_argument("--out", default="zoo-demo", help="folder for the run, the plot and the exported model")
    p.add_argument("--max-steps", type=int, default=None, help="override the recipe's number of training steps")
    p.set_defaults(run=_cmd_demo)
    p = sub.add_parser("export", help="training checkpoint -> config.json + model.safetensors + model card")
    p.add_argument("checkpoint", help="a .ckpt written by zoo fit, e.g. lightning_logs/version_0/checkpoints/last.ckpt")
    p.add_argument("out_dir", help="folder to write (loads back with zoo.load('local-dir:OUT_DIR'))")
    p.add_argument("--metrics", default=None, help="metrics.csv with test results (default: the checkpoint's run)")
    p.add_argument("--base-model", default=None, help="Hub repo the run started from (default: the checkpoint's)")
    p.add_argument("--dataset", default=None, help="dataset the card names (default: the entry template's)")
    p.add_argument("--run-config", default=None, help="the run's config.yaml (default: the checkpoint's run)")
    p.set_defaults(run=_cmd_export)
    p = sub.add_parser("push", help="upload an exported folder to a Hugging Face Hub model repo")
    p.add_argument("folder", help="a folder written by zoo export (config.json, model.safetensors, README.md)")
    p.add_argument("repo_id", help="ORG/NAME of the model repo (created if it does not exist)")
    p.add_argument("--tag", default=None, help="tag the new commit, e.g. v1 (an immutable revision to pin)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.set_defaults(run=_cmd_push)
    p = sub.add_parser("download", help="download a model's files into the Hugging Face cache; prints the folder")
    p.add_argument("name", help="a registry entry with weights, hf-hub:ORG/NAME[@REV] or ORG/NAME")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: the entry's pinned one, or main)")
    p.set_defaults(run=_cmd_download)
    p = sub.add_parser("recipes", help="list, show or copy the recipes shipped in the package")
    p.add_argument("action", choices=("list", "show", "cp"))
    p.add_argument("name", nargs="?", help="domain/entry/stage, with or without recipe://")
    p.add_argument("dest", nargs="?", help="for cp: a file or folder (default: the current folder)")
    p.set_defaults(run=_cmd_recipes)
    for name in LIGHTNING_SUBCOMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} (zoo {name} --help for its options)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoo`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    console = Console(stderr=True)
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        return _run_lightning(argv, console)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args, Console())
    except (UnknownModelError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        return 2


def _run_lightning(argv: list[str], console: Console) -> int:
    from zoo.training.cli import run_lightning
    from zoo.training.recipes import RecipeNotFoundError
    from zoo.training.task import RecipeError

    try:
        run_lightning(argv)
    except (RecipeError, RecipeNotFoundError) as err:
        # Raised while the recipe's classes are built: before any training step.
        console.print(f"[red]error:[/red] {err}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
