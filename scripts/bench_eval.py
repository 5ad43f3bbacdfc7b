"""Time `ncodec eval` against an earlier revision of ncodec, in one run, on the same files and codecs.

    python scripts/bench_eval.py --baseline b420fb5 --codec jpeg,webp,avif --max-files 4 --jobs 1,2

The baseline is checked out with ``git worktree`` into a temporary folder, its C extensions are
built in place, and it runs with the same Python (its package on ``PYTHONPATH``), without a result
cache. The runs are interleaved over ``--rounds`` rounds (a shared machine's slow spells hit
every variant); the script prints the median wall and CPU seconds, the speed-ups over the
baseline's one-job run, and whether every operating point (the knob setting each target led
to, and its rate) is the same.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_eval(source: Path, args: argparse.Namespace, jobs: int, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all processes) of one `ncodec eval` run of the package in
    ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "ncodec", "-q", "eval", args.media, "--codec", args.codec, "--data", args.data,
               "--no-cache", "--json", str(out), "--max-files", str(args.max_files)]
    if jobs > 1:
        command += ["--jobs", str(jobs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=source, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def points(path: Path) -> dict[str, list[tuple[float, float]]]:
    """(mean knob setting, mean rate) per operating point and codec of an eval JSON."""
    result = json.loads(path.read_text())
    rate = result["rate"]
    return {name: [(round(p.get("knob_mean", 0.0), 9), round(p[rate], 9)) for p in codec["points"]]
            for name, codec in result["codecs"].items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="git revision to compare against")
    p.add_argument("--media", default="image")
    p.add_argument("--codec", default="jpeg,webp,avif")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "images" / "dev"))
    p.add_argument("--max-files", type=int, default=4)
    p.add_argument("--jobs", default="1,2", help="comma-separated job counts for this revision")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; medians are reported")
    args = p.parse_args()
    args.data = str(Path(args.data).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.baseline], check=True, cwd=ROOT)
        try:  # its C extensions (the rANS core, LPC), built in place
            subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], check=True, cwd=base,
                           stdout=subprocess.DEVNULL)
            jobs = [int(j) for j in args.jobs.split(",")]
            runs: dict[str, list[tuple[float, float]]] = {}
            same: dict[str, bool] = {}
            for round_ in range(args.rounds):  # interleaved, so that a slow spell of a shared machine hits all
                runs.setdefault("base", []).append(run_eval(base, args, 1, Path(tmp) / "base.json"))
                reference = points(Path(tmp) / "base.json")
                for j in jobs:
                    out = Path(tmp) / f"head-{j}.json"
                    runs.setdefault(f"jobs {j}", []).append(run_eval(ROOT, args, j, out))
                    same[f"jobs {j}"] = same.get(f"jobs {j}", True) and points(out) == reference
            base_wall = statistics.median(w for w, _ in runs["base"])
            base_cpu = statistics.median(c for _, c in runs["base"])
            print(f"baseline {args.baseline} (jobs 1): wall {base_wall:7.1f} s, CPU {base_cpu:7.1f} s "
                  f"(median of {args.rounds}: {', '.join(f'{w:.1f}' for w, _ in runs['base'])})")
            for j in jobs:
                key = f"jobs {j}"
                wall = statistics.median(w for w, _ in runs[key])
                cpu = statistics.median(c for _, c in runs[key])
                print(f"this tree ({key}): wall {wall:7.1f} s, CPU {cpu:7.1f} s  {base_wall / wall:4.2f}x wall, "
                      f"{base_cpu / cpu:4.2f}x CPU  same points: {same[key]}  "
                      f"({', '.join(f'{w:.1f}' for w, _ in runs[key])})")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)


if __name__ == "__main__":
    main()
