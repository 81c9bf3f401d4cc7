"""`make fuzz`: schemathesis over the three services' OpenAPI, as an admin, on a stack of its own.

Checks `not_a_server_error` (no 500 for any input) and `status_code_conformance` (every status
answered is declared in the route's OpenAPI). The stack is the benchmark's (`bench.stack`), in
`.local/fuzz`, wiped at each start; prints one line per service and `fuzz: N failures`, and
exits non-zero on any. Extra schemathesis options: `make fuzz FUZZ_ARGS="--max-examples 100"`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.stack import BenchStack
from deploy.localstack import PROJECT_ROOT

CHECKS = "not_a_server_error,status_code_conformance"
#: A runtime error of the tools, not of the API under test: a SystemError from `ast.parse` in
#: hypothesis, run from two schemathesis workers at once (CPython 3.11's ast module is not
#: thread-safe). Seen in CI, and twice in a row on 2026-12-07, so the fuzz runs one worker now;
#: should the tools still hit it, the service is fuzzed once more.
TOOL_RACE = "AST constructor recursion depth mismatch"


def _run(command: list[str], report: Path) -> int:
    with report.open("w") as out:
        return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode


def main(argv: list[str]) -> int:
    stack = BenchStack(root=PROJECT_ROOT / ".local" / "fuzz")
    stack.start()
    failed: list[str] = []
    try:
        for service in ("intake", "risk", "notify"):
            report = stack.root / f"{service}.txt"
            command = [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{stack.url(service)}/openapi.json",
                "--header",
                f"Authorization: Bearer {stack.api_key}",
                "--checks",
                CHECKS,
                "--max-examples",
                "30",
                "--seed",
                "20261130",
                "--workers",
                "1",
                "--no-color",
                *argv,
            ]
            code = _run(command, report)
            if code != 0 and TOOL_RACE in report.read_text():
                # Not the API's failure: CPython 3.11's ast module is not thread-safe, and
                # hypothesis parses lambdas' source from schemathesis's worker threads. Once more.
                print(f"{service:<7} schemathesis hit CPython's ast race ({TOOL_RACE}); again")
                code = _run(command, report)
            summary = [line for line in report.read_text().splitlines() if "generated" in line]
            print(f"{service:<7} {'ok' if code == 0 else 'FAILED'}  {' '.join(summary[-1:])}")
            if code != 0:
                failed.append(service)
                print(f"        report: {report}")
    finally:
        stack.stop()
    print(f"fuzz: {len(failed)} failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
