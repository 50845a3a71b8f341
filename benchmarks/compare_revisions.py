"""Before/after speed table of two revisions, measured back to back in one command (issue 22).

    python benchmarks/compare_revisions.py f90b7cc          # that commit against the working tree
    python benchmarks/compare_revisions.py f90b7cc --after HEAD --skip-optimize

Each revision's sources are checked out into a temporary git worktree (the working tree itself
for ``--after .``, the default) and every case runs on them with THIS checkout's benchmark code
and interpreter (``PYTHONPATH`` and ``FLEETSIM_SOURCE``, which the benchmark scripts put first
on ``sys.path``, set to the revision's tree, so the package under test is that revision's): CLI commands as subprocesses from an empty curve cache, library figures through
the benchmark functions in a subprocess. Cases alternate between the two revisions, so a change
in the machine's load hits both. Prints a Markdown table; figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Library figures, each a Python snippet printing one JSON value (run with the revision first
#: on sys.path, then this checkout's benchmarks/).
SNIPPETS = {
    "engine": "import json, bench_inference as b; "
              "print(json.dumps([[r, rps, ratio] for r, rps, ratio in b.bench_scaling()]))",
    "mmc": "import json, bench_inference as b, io, contextlib\n"
           "buf = io.StringIO()\nwith contextlib.redirect_stdout(buf): b.bench_mmc()\n"
           "line = [l for l in buf.getvalue().splitlines() if 'engine / bare' in l][0]\n"
           "print(json.dumps(float(line.split()[4])))",
    "projection": "import json, bench_projection as b; print(json.dumps(b.projection_s(50, 20)))",
    "sweep": "import json, sys, cloudpickle, bench_sweep as b\n"
             "assert b.Executor.__module__ == 'simulator.sweep.runner'\n"
             "cloudpickle.register_pickle_by_value(b)\n"
             "if __name__ == '__main__':\n"
             "    best = b.part_a(b.load_scenario(b.CHAT), 2)\n"
             "    print(json.dumps(best))",
}


def worktree(revision: str, into: Path) -> Path:
    """The revision's sources (the working tree itself for '.')."""
    if revision == ".":
        return ROOT
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), revision],
                   check=True, capture_output=True)  # fmt: skip
    return into


def environment(tree: Path, cache: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(HERE)]), FLEETSIM_CACHE_DIR=str(cache),
               FLEETSIM_SOURCE=str(tree))
    env.pop("CI", None)
    return env


def cli_seconds(tree: Path, args: list[str], cache: Path) -> float:
    """Wall seconds of ``python -m simulator ARGS`` in the revision's tree."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "simulator", *args], cwd=tree, env=environment(tree, cache),
                          check=False, capture_output=True, text=True)  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(args)} in {tree}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return elapsed


def snippet_value(tree: Path, name: str, cache: Path) -> object:
    script = cache / f"{name}.py"
    guard = (f"import sys; sys.path[:0] = [{str(tree)!r}, {str(HERE)!r}]\n"
             f"import simulator; assert simulator.__file__.startswith({str(tree)!r}), simulator.__file__\n")
    script.write_text(guard + SNIPPETS[name])
    done = subprocess.run([sys.executable, str(script)], cwd=tree, env=environment(tree, cache),
                          check=False, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{name} in {tree}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cases(skip_optimize: bool) -> list[tuple[str, object]]:
    """(name, case) pairs; a case maps (revision tree, its scratch folder) to figures."""

    def help_s(tree: Path, work: Path) -> dict[str, float]:
        return {"fleetsim --help (s)": min(cli_seconds(tree, ["--help"], work) for _ in range(3))}

    def run_s(tree: Path, work: Path) -> dict[str, float]:
        args = ["run", "scenarios/chat-assistant.yaml", "--out", str(work / "out"), "--quiet", "--force"]
        return {"cold run chat-assistant (s)": cli_seconds(tree, args, work / "cache")}

    def report_s(tree: Path, work: Path) -> dict[str, float]:
        args = ["report", "scenarios/lifecycle.yaml", "-o", str(work / "lifecycle.xlsx"), "--quiet"]
        return {"cold report lifecycle (s)": cli_seconds(tree, args, work / "cache")}

    def optimize_s(tree: Path, work: Path) -> dict[str, float]:
        args = ["optimize", "scenarios/chat-assistant.yaml", "--quiet"]
        cold = cli_seconds(tree, args, work / "cache")
        return {"cold optimize chat-assistant (s)": cold,
                "warm optimize chat-assistant (s)": cli_seconds(tree, args, work / "cache")}  # fmt: skip

    def sweep_s(tree: Path, work: Path) -> dict[str, float]:
        best = snippet_value(tree, "sweep", work)
        assert isinstance(best, dict)
        return {"64-plan sweep, 1 worker (s)": best["1 worker"], "64-plan sweep, 2 workers (s)": best["2 workers"],
                "sweep speed-up, 2 workers vs 1 (x)": best["1 worker"] / best["2 workers"]}  # fmt: skip

    def engine(tree: Path, work: Path) -> dict[str, float]:
        figures = {}
        for replicas, rps, ratio in snippet_value(tree, "engine", work):  # type: ignore[union-attr]
            figures[f"engine chat, {replicas} replicas (req/s)"] = rps
            figures[f"engine / bare simpy, {replicas} replicas (x)"] = ratio
        figures["engine / bare simpy, M/M/16 (x)"] = float(snippet_value(tree, "mmc", work))  # type: ignore[arg-type]
        return figures

    def projection(tree: Path, work: Path) -> dict[str, float]:
        return {"50-workload projection (s)": float(snippet_value(tree, "projection", work))}  # type: ignore[arg-type]

    chosen = [("help", help_s), ("run", run_s), ("report", report_s), ("optimize", optimize_s),
              ("sweep", sweep_s), ("engine", engine), ("projection", projection)]  # fmt: skip
    return [c for c in chosen if not (skip_optimize and c[0] == "optimize")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="git revision measured first (e.g. a commit before a change)")
    parser.add_argument("--after", default=".", help="revision measured second ('.': the working tree)")
    parser.add_argument("--skip-optimize", action="store_true", help="leave out cold/warm optimize (minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        trees = {"before": worktree(args.before, work / "before-tree"), "after": worktree(args.after, work / "after-tree")}
        results: dict[str, dict[str, float]] = {label: {} for label in trees}
        try:
            for name, case in cases(args.skip_optimize):  # alternating: one case on each revision
                for label, tree in trees.items():
                    scratch = work / label / name
                    scratch.mkdir(parents=True)
                    figures = case(tree, scratch)  # type: ignore[operator]
                    results[label] |= figures
                    print(f"{label:>6} {name}: " + ", ".join(f"{k} {v:,.2f}" for k, v in figures.items()),
                          file=sys.stderr, flush=True)  # fmt: skip
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                                   check=False, capture_output=True)  # fmt: skip
    print(f"\n| figure | before ({args.before}) | after ({args.after}) | after / before |")
    print("|---|---:|---:|---:|")
    for name, before in results["before"].items():
        after = results["after"].get(name, float("nan"))
        fmt = (lambda v: f"{v:,.0f}") if "req/s" in name else (lambda v: f"{v:.2f}")
        print(f"| {name} | {fmt(before)} | {fmt(after)} | {after / before:.2f} |")


if __name__ == "__main__":
    main()
