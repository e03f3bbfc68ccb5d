"""Run the fuzz targets with atheris (libFuzzer's coverage-guided engine for Python), one at a time.

    python tests/fuzz/run.py [--seconds S] [--runs N] [--work DIR] [--seed N] [TARGET...]

Each target runs in a child process of its own (libFuzzer owns the process and exits at the end)
with a scratch directory that is removed afterwards, for S seconds or N executions, whichever
comes first, starting from the seed corpus in tests/fuzz/corpus/<target>/ plus what earlier runs
found in WORK/corpus/<target>/ (new inputs go there, never into the repository). A finding is
written to WORK/crashes/<target>/; copy it into tests/fuzz/regressions/<target>/ so that
test_fuzz_regressions.py replays it. Limits: 10 s per input (a hang), 1 GiB resident (unbounded
memory). Prints one line per target and, with --report, appends them as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _fuzzlib  # noqa: E402

# Instrumented for coverage: the runtime, and the standard-library parsers it hands input to.
INSTRUMENT = ["urunc", "tomllib", "shlex", "glob", "base64", "binascii"]
MAX_LEN = {"solo5_manifest": 8192}
TIMEOUT_S = 10
RSS_LIMIT_MB = 1024


def _child(target: str, flags: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=INSTRUMENT):
        one = _fuzzlib.load_target(target)

    def test_one_input(data: bytes) -> None:
        one(data)

    atheris.Setup([sys.argv[0], *flags], test_one_input)
    atheris.Fuzz()


def run_target(target: str, seconds: float, runs: int, work: Path, seed: int | None,
               quiet: bool = True) -> dict[str, object]:
    corpus = work / "corpus" / target
    crashes = work / "crashes" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    flags = [str(corpus), str(_fuzzlib.CORPUS / target),
             f"-max_total_time={max(1, int(seconds))}", f"-timeout={TIMEOUT_S}",
             f"-rss_limit_mb={RSS_LIMIT_MB}", f"-max_len={MAX_LEN.get(target, 4096)}",
             f"-artifact_prefix={crashes}/", "-print_final_stats=1"]
    if runs:
        flags.append(f"-runs={runs}")
    if seed is not None:
        flags.append(f"-seed={seed}")
    dictionary = HERE / "dicts" / f"{target}.dict"
    if dictionary.exists():
        flags.append(f"-dict={dictionary}")
    scratch = tempfile.mkdtemp(prefix=f"urunc-fuzz-{target}-")
    env = dict(os.environ, URUNC_FUZZ_TMP=scratch, PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__)), "--child", target, "--", *flags],
                              env=env, cwd=scratch, capture_output=True, text=True, errors="replace",
                              timeout=seconds + 300)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started
    out = proc.stdout + proc.stderr
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    cov = re.findall(r"\bcov: (\d+)", out)
    result = {
        "target": target, "ok": proc.returncode == 0,
        "execs": int(execs.group(1)) if execs else 0, "seconds": round(elapsed, 1),
        "coverage": int(cov[-1]) if cov else 0,
        "corpus": sum(1 for _ in corpus.iterdir()) + sum(1 for _ in (_fuzzlib.CORPUS / target).iterdir()),
        "output": out,
    }
    if not quiet:
        sys.stderr.write(out[-20000:])
    elif proc.returncode != 0:   # the exception libFuzzer caught, and its verdict
        at = out.find("=== Uncaught Python exception")
        sys.stderr.write((out[at:at + 8000] + "\n...\n" if at >= 0 else "") + out[-2500:])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(_fuzzlib.TARGETS))
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "600")))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("FUZZ_RUNS", "0")),
                        help="stop a target after this many executions (0: only the time limit)")
    parser.add_argument("--work", type=Path, default=_fuzzlib.REPO / "build" / "fuzz")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report", type=Path, default=None, help="append a Markdown table of the results")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    unknown = [t for t in args.targets if t not in _fuzzlib.TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r} (have {', '.join(_fuzzlib.TARGETS)})")
    results = []
    for target in args.targets:
        r = run_target(target, args.seconds, args.runs, args.work, args.seed, quiet=not args.verbose)
        results.append(r)
        verdict = "ok" if r["ok"] else f"FINDING in {args.work / 'crashes' / target}"
        print(f"{target:18} {r['execs']:>10} execs {r['seconds']:>8.1f} s  cov {r['coverage']:>5}  "
              f"corpus {r['corpus']:>5}  {verdict}", flush=True)
    if args.report:
        with open(args.report, "a") as f:
            f.write(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                    "| target | executions | seconds | coverage | corpus | result |\n|---|---:|---:|---:|---:|---|\n")
            for r in results:
                f.write(f"| {r['target']} | {r['execs']} | {r['seconds']} | {r['coverage']} | {r['corpus']} | "
                        f"{'no finding' if r['ok'] else 'FINDING'} |\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
