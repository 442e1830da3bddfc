"""The ``zoo`` command line: ``list``, ``info`` and ``demo``.

The LightningCLI subcommands (fit / validate / test / predict), ``export`` and ``recipes`` land with
the training stack (issue #3).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from rich.console import Console
from rich.table import Column, Table

import zoo
from zoo.registry import UnknownModelError, get_entry


def _cmd_list(args: argparse.Namespace, console: Console) -> int:
    table = Table("domain", "pattern", "context", "weights", "description")
    table.columns.insert(0, Column("name", no_wrap=True))
    for name in zoo.list_models(args.pattern, domain=args.domain):
        entry = get_entry(name)
        table.add_row(
            name,
            entry.domain,
            entry.config.backbone.pattern,
            f"{entry.context:,}",
            "yes" if entry.weights else "-",
            entry.description,
        )
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
    """Build every DNA entry with random weights, time a forward pass and check decode == parallel."""
    torch.manual_seed(0)
    table = Table(Column("model", no_wrap=True), "params", "tokens", "forward (s)", "parallel vs step max |diff|")
    for name in zoo.list_models(domain="genomics"):
        model = zoo.load(name, pretrained=False).eval()
        length = min(args.length, model.config.max_seq_len)
        ids = torch.randint(7, 12, (1, length))  # A C G T N token ids
        with torch.no_grad():
            start = time.perf_counter()
            out = model(ids)
            seconds = time.perf_counter() - start
            agreement = "bidirectional: no step"
            if model.backbone.causal and not model.config.rc_equivariant:
                prefix = ids[:, :32]
                parallel = model(prefix).logits
                state = model.init_state(1)
                steps = []
                for t in range(prefix.shape[1]):
                    step_out = model.step(prefix[:, t], state)
                    state = step_out.state
                    steps.append(step_out.logits)
                agreement = f"{(torch.stack(steps, 1) - parallel).abs().max():.1e}"
        assert torch.isfinite(out.logits).all()
        params = f"{sum(p.numel() for p in model.parameters()):,}"
        table.add_row(name, params, f"{length:,}", f"{seconds:.2f}", agreement)
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``zoo`` command."""
    parser = argparse.ArgumentParser(prog="zoo", description="seqzoo: long-sequence models behind one API")
    parser.add_argument("--version", action="version", version=f"seqzoo {zoo.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. '*dna*'")
    p.add_argument("--domain", choices=("genomics", "protein", "forecasting"))
    p.set_defaults(run=_cmd_list)
    p = sub.add_parser("info", help="show one model's size, context, licence and config")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print everything, config included, as JSON")
    p.set_defaults(run=_cmd_info)
    p = sub.add_parser("demo", help="forward pass and decode check of every DNA architecture (random weights)")
    p.add_argument("--length", type=int, default=4096, help="tokens per forward pass (capped at each model's context)")
    p.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoo`` console script."""
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return args.run(args, console)
    except (UnknownModelError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
