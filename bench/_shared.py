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
