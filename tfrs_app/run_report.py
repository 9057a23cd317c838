"""``tfrs-app report RUN_DIR``: one page (HTML and Markdown) with every stage's numbers and plots.

Reads what the stages left in the run directory and writes

    <run_dir>/report.html, <run_dir>/report.md   the page (images referenced by relative path)
    <run_dir>/report_plots/index_tuning.png       recall vs leaves searched, and batch latency

Sections appear for the stages that ran: retrieval (model vs popularity), index (ScaNN
parameters, tuning trials, recall against exact search, latency), ranker (per-head metrics
against the item prior) and thresholds (the per-head policy tables with their CIs, PR curves
per policy, positive rate against score per uncertainty bucket, reliability diagrams). The
plots are the run's own PNGs, never redrawn from other data.
"""
from __future__ import annotations

import html
import re
import time
from pathlib import Path

from tfrs_app.io import atomic_write_text, read_json


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Writes report.html and report.md into ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    sections: list[tuple[str, list]] = []  # (title, blocks); a block is ("md", text) or ("img", path, caption)
    retrieval = run_dir / "retrieval" / "metrics.json"
    if retrieval.exists():
        from tfrs_app.cli import format_metrics

        sections.append(("Retrieval", [("md", format_metrics(read_json(retrieval)))]))
    index = run_dir / "index" / "report.json"
    if index.exists():
        sections.append(("Index", _index_section(read_json(index), run_dir)))
    ranker = run_dir / "ranker" / "metrics.json"
    if ranker.exists():
        from tfrs_app.cli import format_ranker_metrics

        sections.append(("Ranker", [("md", format_ranker_metrics(read_json(ranker)))]))
    thresholds = run_dir / "ranker" / "report.json"
    if thresholds.exists():
        sections.append(("Decision thresholds", _threshold_section(read_json(thresholds), run_dir)))
    exports = run_dir / "exports.json"
    if exports.exists():
        rows = "\n".join(f"| {name} | {path} |" for name, path in sorted(read_json(exports).items()))
        sections.append(("Exports", [("md", "| model | version path |\n|---|---|\n" + rows)]))
    if not sections:
        raise FileNotFoundError(f"{run_dir}: nothing to report (no stage has written its results here)")
    title = f"tfrs-app run report: {run_dir.name}"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = [f"# {title}", "", f"Generated {stamp} from `{run_dir}`.", ""]
    page = [f"<h1>{html.escape(title)}</h1>", f"<p>Generated {stamp} from <code>{html.escape(str(run_dir))}</code>.</p>"]
    for name, blocks in sections:
        md += [f"## {name}", ""]
        page.append(f"<h2>{html.escape(name)}</h2>")
        for block in blocks:
            if block[0] == "md":
                md += [block[1], ""]
                page.append(markdown_to_html(block[1]))
            else:
                _, path, caption = block
                rel = path.relative_to(run_dir).as_posix()
                md += [f"![{caption}]({rel})", ""]
                page.append(f'<figure><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%}figure{margin:1em 0}code{background:#f4f4f4}")
    document = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(page) + "\n</body></html>\n")
    atomic_write_text(run_dir / "report.html", document)
    atomic_write_text(run_dir / "report.md", "\n".join(md))
    return run_dir / "report.html", run_dir / "report.md"


def _index_section(report: dict, run_dir: Path) -> list:
    from tfrs_app.cli import format_index

    recall_key = next(k for k in report if k.startswith("recall@"))
    trials = "\n".join(f"| {t['num_leaves_to_search']} | {t[recall_key]:.3f} | {t['build_seconds']:.2f} |"
                       for t in report["tuning"])
    table = (f"| leaves searched | {recall_key} vs exact | build s |\n|---|---|---|\n{trials}\n\n"
             f"batch of {report['num_queries']} queries: ScaNN {report['scann_batch_ms']:.1f} ms, "
             f"exact {report['brute_force_batch_ms']:.1f} ms")
    plot = _plot_index(report, recall_key, run_dir / "report_plots" / "index_tuning.png")
    return [("md", format_index(report)), ("md", table),
            ("img", plot, "ScaNN recall against exact search per number of leaves searched, and batch latency")]


def _plot_index(report: dict, recall_key: str, path: Path) -> Path:
    from tfrs_app.evaluation.plots import _figure, save_png

    fig = _figure(9.0, 3.6)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    leaves = [t["num_leaves_to_search"] for t in report["tuning"]]
    left.plot(leaves, [t[recall_key] for t in report["tuning"]], marker="o")
    left.axhline(report.get("target_recall", 0) or 0, color="grey", linestyle="--", label="target")
    left.set_xlabel("leaves searched")
    left.set_ylabel(f"{recall_key} vs exact")
    left.set_title(f"{report['num_candidates']} candidates, {report['params']['num_leaves']} leaves")
    left.legend()
    right.bar(["ScaNN", "exact"], [report["scann_batch_ms"], report["brute_force_batch_ms"]], color=["C0", "C1"])
    right.set_ylabel(f"ms per batch of {report['num_queries']} queries")
    right.set_title("search latency")
    return save_png(fig, path)


def _threshold_section(reports: dict, run_dir: Path) -> list:
    from tfrs_app.evaluation.report import format_threshold_report

    blocks = []
    for head, report in reports.items():
        blocks.append(("md", format_threshold_report(report).replace(f"### {head}", f"**{head}**", 1)))
        captions = {"pr_curves": "test PR curves per threshold policy",
                    "positive_rate_by_bucket": "test positive rate against score, per uncertainty bucket",
                    "reliability": "reliability diagram (test)"}
        for key, caption in captions.items():
            name = report.get("plots", {}).get(key)
            if name and (run_dir / "ranker" / "plots" / name).exists():
                blocks.append(("img", run_dir / "ranker" / "plots" / name, f"{head}: {caption}"))
    return blocks


def markdown_to_html(text: str) -> str:
    """The Markdown our formatters write: pipe tables, ``###`` headings, **bold**, `code`, paragraphs."""
    out, table = [], []

    def inline(s: str) -> str:
        s = html.escape(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    def flush() -> None:
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|?[\s:|-]+\|?", r)]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            head = "".join(f"<th>{inline(c)}</th>" for c in cells[0])
            body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in cells[1:])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("### "):
            out.append(f"<h3>{inline(line[4:])}</h3>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "\n".join(out)
