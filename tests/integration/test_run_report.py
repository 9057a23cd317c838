"""`tfrs-app report RUN_DIR`: one HTML page whose images are the run's own, non-empty PNGs."""
from __future__ import annotations

import re


def test_report_page_references_the_runs_real_plots(ranker_run, capsys):
    from tfrs_app.cli import main
    from tfrs_app.stages import build_index

    run_dir = ranker_run[0]
    if not (run_dir / "index" / "report.json").exists():
        build_index(run_dir)
    assert main(["report", str(run_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (run_dir / "report.html").read_text()
    for heading in ("Retrieval", "Index", "Ranker", "Decision thresholds"):
        assert f"<h2>{heading}</h2>" in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 1 + 3 * 3  # the index plot, then PR curves, positive rate by bucket, reliability per head
    for rel in images:
        png = run_dir / rel
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, rel
    assert "ranker/plots/satisfaction_pr_curves.png" in images  # the calibrate stage's own plot, not a copy
    assert "<table>" in page and "gain at matched precision" not in page  # full per-target tables
    assert "recall gain vs global" in page
    markdown = (run_dir / "report.md").read_text()
    assert all(f"]({rel})" in markdown for rel in images)


def test_report_on_an_empty_directory_says_so(tmp_path, capsys):
    from tfrs_app.cli import main

    assert main(["report", str(tmp_path)]) == 2
    assert "nothing to report" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
