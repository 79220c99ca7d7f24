"""The `nli` console script: one dispatcher, subcommands registered per package.

Each package owns a ``commands.py`` with ``register(subparsers)``; they are
found through the ``nli.commands`` entry points in pyproject.toml, so this
module imports nothing downstream. A handler returns an exit code.

Failures a user can cause become a one-line message and exit code 2:
``UserError``, ValueError (validation, malformed JSON/UTF-8, ``nli.inputs.InputError``),
KeyError, OSError (a missing file, a directory where a file is expected, a
read-only location, a full disk: the message names the path), RecursionError
(absurdly nested JSON) and MemoryError. Anything else is a bug and keeps its
traceback. On SIGTERM the handler removes the temp files of atomic writes in
progress (nli.atomic) and exits at once with code 143 (raising from a signal
handler inside numba/torch code would turn into their own exceptions).
"""

from __future__ import annotations

import argparse
from contextlib import contextmanager
from importlib.metadata import entry_points
import os
import signal
import sys
import threading


class UserError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``nli: error: ...``) and exit code 2 from
    ``main``."""

    def error(self, message):
        raise _UsageError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nli",
        description="NLI Engine: tables, simulator, LLM evaluation, export, MoE",
        epilog="Limits (nli.inputs): input files must be regular files of at most 1 GiB "
        "(GGUF and checkpoint weights 64 GiB); a model or forward pass estimated above "
        "8 GiB is refused (environment variable NLI_MAX_ALLOC_BYTES raises it). "
        "Bad input: a one-line error, exit code 2.",
    )
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
    demo = sub.add_parser(
        "demo", help="the main job: default tables, simulator, LLM and MoE reports"
    )
    demo.add_argument(
        "--out", default="out/demo", help="folder for plots and JSON (default: out/demo)"
    )
    size = demo.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="half the token budget (for a fast look)"
    )
    size.add_argument(
        "--full", action="store_true", help="the longer evaluations: every mode, more tokens"
    )
    demo.add_argument(
        "--only",
        nargs="*",
        metavar="SECTION",
        help=f"run only these sections ({' '.join(demo_sections())})",
    )
    demo.set_defaults(func=_demo)
    return parser


def demo_sections() -> list[str]:
    """Names of the registered `nli demo` sections, in run order."""
    return [
        ep.name.split("_", 1)[-1]
        for ep in sorted(entry_points(group="nli.demo"), key=lambda e: e.name)
    ]


def _demo(args) -> int:
    from .demo import run_demo
    from .inputs import check_output_dir

    known = demo_sections()
    if args.only is not None:
        bad = [s for s in args.only if s not in known]
        if bad or not args.only:
            raise UserError(
                f"--only: unknown section(s) {', '.join(map(repr, bad)) or '(none given)'}; "
                f"known: {' '.join(known)}"
            )
    check_output_dir(args.out, "--out")
    return 1 if run_demo(args.out, args.quick, args.only, args.full) else 0


def group(sub, groups: dict, name: str, help: str):
    """Get or create the sub-subparsers of a command group (`table`, `sim`, ...)."""
    if name not in groups:
        p = sub.add_parser(name, help=help)
        g = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        g.required = True
        groups[name] = g
    return groups[name]


def error_message(e: BaseException) -> str:
    """One line for a user-caused exception (OSError names its path)."""
    if isinstance(e, OSError) and e.strerror:
        where = (
            f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "") if e.filename else ""
        )
        msg = f"{where}: {e.strerror}" if where else e.strerror
    elif isinstance(e, KeyError) and e.args:
        a = e.args[0]
        msg = a if isinstance(a, str) and " " in a else f"missing key {a!r}"
    elif isinstance(e, RecursionError):
        msg = "input nested too deeply"
    elif isinstance(e, MemoryError):
        msg = "out of memory (input too large?)"
    else:
        msg = str(e) or type(e).__name__
    return " ".join(msg.split())  # one line


# failures a user can cause (bad files, values, locations); anything else is a bug: traceback
USER_ERRORS = (UserError, ValueError, KeyError, OSError, RecursionError, MemoryError)


def _on_sigterm(signum, frame):
    from .atomic import remove_active_temps

    remove_active_temps()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 -- exiting anyway
            pass
    os.write(2, b"nli: terminated\n")
    os._exit(128 + signum)


@contextmanager
def _sigterm_raises():
    """SIGTERM -> remove atomic-write temp files, exit 143 (main thread only; restored
    afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        print(f"nli: error: {error_message(e)}", file=sys.stderr)
        return 2
    try:
        with _sigterm_raises():
            return int(args.func(args) or 0)
    except USER_ERRORS as e:
        print(f"nli: error: {error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nli: interrupted", file=sys.stderr)
        return 130


if (
    __name__ == "__main__"
):  # `python -m nli.cli`: run the imported module, so UserError is one class
    from nli.cli import main as _main

    sys.exit(_main())
