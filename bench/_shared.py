"""Helpers every benchmark shares: the repository state a result was measured on."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git_state() -> dict:
    """HEAD, plus '-dirty-<sha1>' over ``git diff HEAD`` and the untracked, non-ignored files
    (read-only git commands). Untracked files count: the package is edited concurrently and
    new modules (``serving/recommender.py`` when this was written) are what is measured.
    bench/results/ is left out so that an earlier result does not change the hash."""
    def git(*args) -> bytes:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True).stdout

    try:
        head = git("rev-parse", "HEAD").decode().strip()
        diff = git("diff", "HEAD")
        untracked = sorted(p for p in git("ls-files", "--others", "--exclude-standard", "-z").decode().split("\0")
                           if p and not p.startswith("bench/results/"))
    except OSError:
        return {"state": "unknown"}
    h = hashlib.sha1(diff)
    for p in untracked:
        path = ROOT / p
        h.update(p.encode() + b"\0")
        if path.is_file() and path.stat().st_size < 10_000_000:
            h.update(path.read_bytes())
    dirty = bool(diff or untracked)
    return {"state": head + (f"-dirty-{h.hexdigest()[:12]}" if dirty else ""), "head": head,
            "modified": [line.split(maxsplit=1)[-1]
                         for line in git("diff", "HEAD", "--name-status").decode().splitlines()],
            "untracked": untracked}


def fetch(outputs) -> None:
    """Forces every output tensor to host memory (a timed call ends when its results are usable)."""
    import tensorflow as tf

    for t in tf.nest.flatten(outputs):
        t.numpy()


def warm_up(calls: dict, warmup: int, indent: str = "  ") -> dict:
    """Calls each ``calls[name](rep)`` once (tracing) and ``warmup`` more times; returns the warm
    seconds per call, from which each variant's repetition count is sized."""
    import time

    estimate = {}
    for name, call in calls.items():
        started = time.perf_counter()
        fetch(call(0))
        first = time.perf_counter() - started
        started = time.perf_counter()
        for r in range(warmup):
            fetch(call(r))
        estimate[name] = (time.perf_counter() - started) / max(1, warmup)
        print(f"{indent}{name}: first call {1000 * first:.0f} ms, warm ~{1000 * estimate[name]:.2f} ms", flush=True)
    return estimate


def round_robin(calls: dict, reps: dict, seed: int) -> dict:
    """{name: [ms per call]}: every round calls each variant once, in a shuffled order, so load
    changes on a shared machine hit all variants alike; variant ``name`` runs ``reps[name]`` rounds."""
    import time

    import numpy as np

    times: dict = {name: [] for name in calls}
    rng = np.random.default_rng(seed)
    names = list(calls)
    for r in range(max(reps.values())):
        for i in rng.permutation(len(names)):
            name = names[i]
            if r < reps[name]:
                started = time.perf_counter()
                fetch(calls[name](r))
                times[name].append(1000 * (time.perf_counter() - started))
    return times
