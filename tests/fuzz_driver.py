"""Long-lived CLI driver for the CLI fuzz tests (tests/test_fuzz_cli_*.py): runs
``nli.cli.main(argv)`` in-process per request.

Protocol: one JSON list (argv) per line on stdin; one JSON object per line on
stdout: ``{"rc": int, "err": str, "out": str, "escaped": str | null}``.
``escaped`` is the traceback of an exception that escaped ``main`` (a bug).
A crash (segfault, abort) kills this process, which the test sees as a
negative return code. Starting torch/numba once keeps an example at
milliseconds instead of the 1-2 s of a fresh ``nli`` process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import sys
import traceback


def main() -> None:
    faulthandler.enable()  # a crash prints the C-level stack to the real stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    from nli.cli import main as cli_main

    for line in sys.stdin:
        argv = json.loads(line)
        err, so = io.StringIO(), io.StringIO()
        escaped = None
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(so):
            try:
                rc = cli_main(argv)
            except SystemExit as e:  # argparse --help, or a handler calling sys.exit
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: BLE001 -- reported to the test as a failure, not hidden
                rc = -1000
                escaped = traceback.format_exc()
        out.write(
            json.dumps(
                {
                    "rc": rc,
                    "err": err.getvalue()[-4000:],
                    "out": so.getvalue()[-2000:],
                    "escaped": escaped,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
