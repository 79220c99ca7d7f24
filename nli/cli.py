"""The `nli` console script: one dispatcher, subcommands registered per package.

Each package owns a ``commands.py`` with ``register(subparsers)``; they are
found through the ``nli.commands`` entry points in pyproject.toml, so this
module imports nothing downstream. A handler returns an exit code; a
``UserError`` (or ValueError/KeyError/FileNotFoundError from validation)
becomes a one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
from importlib.metadata import entry_points
import sys


class UserError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nli", description="NLI Engine: tables, simulator, LLM evaluation, export, MoE")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    groups: dict[str, argparse._SubParsersAction] = {}
    for ep in sorted(entry_points(group="nli.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as e:  # a package missing from this install: say so, keep the rest
            print(f"nli: commands of {ep.name!r} unavailable ({e})", file=sys.stderr)
            continue
        register(sub, groups)
    demo = sub.add_parser("demo", help="the main job: default tables, simulator, LLM and MoE reports")
    demo.add_argument("--out", default="out/demo", help="folder for plots and JSON (default: out/demo)")
    size = demo.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="half the token budget (for a fast look)")
    size.add_argument("--full", action="store_true", help="the longer evaluations: every mode, more tokens")
    demo.add_argument("--only", nargs="*", metavar="SECTION", help="run only these sections (nli hw_sim engine moe)")
    demo.set_defaults(func=_demo)
    return parser


def _demo(args) -> int:
    from .demo import run_demo

    return 1 if run_demo(args.out, args.quick, args.only, args.full) else 0


def group(sub, groups: dict, name: str, help: str):
    """Get or create the sub-subparsers of a command group (`table`, `sim`, ...)."""
    if name not in groups:
        p = sub.add_parser(name, help=help)
        g = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        g.required = True
        groups[name] = g
    return groups[name]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"nli: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"nli: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nli: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
