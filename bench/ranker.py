"""Benchmark: per-request latency of the multi-head ranker, one user x 100 candidates.

One request is what the ranking stage pays online: one user's query features (one real test
row's user_id, timestamp, history and user_<f>, repeated) against ``--candidates`` different
real items (item_id, title, genres of distinct test rows). On it, each of these is timed:

- ``deterministic``: ``model(features, training=False)`` and a sigmoid per head (dropout off);
- ``mc_T``: ``ranking.uncertainty.mc_logits`` + ``summarize`` (encoders and trunk once, T
  vectorised head samples) for T in ``--mc-samples`` (default 10, 30, 100);
- ``naive_T``: ``naive_mc_logits`` + ``summarize`` (T full passes, the same samples) for T in
  ``--naive-samples`` (default 10, 30, 100);
- ``saved_serving_default`` and ``saved_predict_with_uncertainty`` (T = ``ranker.mc_samples``,
  30, with the per-bucket decisions): the exported SavedModel's signatures, loaded with
  ``tf.saved_model.load`` in this process.

Every Keras variant is a ``tf.function`` called on the same input tensors, traced once before
timing (the trace count is checked afterwards; a retrace would be timed as a slow call), then
called ``--warmup`` more times untimed. A timed call includes fetching every output to numpy.
Variants are timed round-robin in a freshly shuffled order each round, so drift on a shared
machine hits them all alike; a slow variant (estimated from its warm-up) stops after
``--budget`` seconds, with at least ``--min-reps`` calls. Reported: p50, p90, mean ms, and
ratios to the deterministic pass of the same run (p50 and mean), the numbers to compare
across machines. The aim in the issue: MC at T = 30 within 1.5x of one deterministic pass.

The ranker is trained on the demo synthetic data (``pipelines/configs/demo.yaml``,
``--epochs`` epochs; weights do not change the cost), or loaded from ``--run-dir`` when that
holds a trained one. Thresholds are calibrated when missing (``ranker.num_bootstrap`` small:
the report is not what is measured) and the ranker is exported under a temporary base dir.

Run: python bench/ranker.py [--run-dir DIR] [--epochs 1] [--candidates 100] [--reps 500] [--out PATH]
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _shared import git_state, round_robin, warm_up  # noqa: E402

import tfrs_app  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfrs_app.config import load_config  # noqa: E402
from tfrs_app.io import atomic_write_json  # noqa: E402
from tfrs_app.ranking import train as ranker_train  # noqa: E402
from tfrs_app.ranking.calibrate import calibrate  # noqa: E402
from tfrs_app.ranking.uncertainty import head_noise, mc_logits, naive_mc_logits, summarize  # noqa: E402
from tfrs_app.serving.ranker import CANDIDATE_INPUTS  # noqa: E402
from tfrs_app.stages import export_ranker  # noqa: E402

AIM_T, AIM_RATIO = 30, 1.5


def has_trained_ranker(run_dir: Path) -> bool:
    return (run_dir / "ranker" / "config.yaml").exists() and (run_dir / "ranker" / "checkpoint" / "ranker.index").exists()


def prepare(args, tmp: Path):
    """(trained ranker, SavedModel path, provenance dict): loads or trains, calibrates, exports."""
    run_dir = Path(args.run_dir) if args.run_dir else tmp / "run"
    info: dict = {"run_dir": str(run_dir)}
    if has_trained_ranker(run_dir):
        info["trained_here"] = False
        print(f"loading the trained ranker of {run_dir}", flush=True)
    else:
        cfg = load_config(ROOT / "pipelines/configs/demo.yaml",
                          [f"run_dir={run_dir}", f"ranker.epochs={args.epochs}", "ranker.num_bootstrap=50"])
        print(f"training the ranker ({args.epochs} epoch(s)) on the demo data in {run_dir}", flush=True)
        started = time.perf_counter()
        metrics = ranker_train.run(cfg)
        info.update(trained_here=True, train_wall_s=time.perf_counter() - started,
                    train_seconds=metrics["train_seconds"],
                    test_auc={h: m["model"]["auc"] for h, m in metrics["test"].items()})
    trained = ranker_train.load_trained_ranker(run_dir)
    if not (run_dir / "ranker" / "thresholds").exists():
        started = time.perf_counter()
        # the loaded config, with a small bootstrap: calibrate's report is not what we measure
        cfg = load_config(run_dir / "ranker" / "config.yaml", ["ranker.num_bootstrap=50"])
        calibrate(run_dir, cfg)
        info["calibrate_s"] = time.perf_counter() - started
    started = time.perf_counter()
    path = export_ranker(run_dir, base_dir=str(tmp / "saved_models"))  # takes a Path: it calls run_dir.resolve()
    info.update(export_s=time.perf_counter() - started, saved_model=str(path), mc_samples=trained.cfg.ranker.mc_samples,
                seed=trained.cfg.seed, ranker=trained.cfg.to_dict()["ranker"])
    return trained, Path(path), info


def make_request(trained, num_candidates: int, row: int) -> tuple[dict, dict]:
    """({name: tensor}, description): test row ``row``'s user features x ``num_candidates`` distinct items."""
    features = ranker_train.split_examples(trained.cfg, trained.data, "test").model_features()
    _, first = np.unique(features["item_id"], return_index=True)
    if first.size < num_candidates:
        raise SystemExit(f"--candidates {num_candidates}: the test split has only {first.size} distinct items")
    rng = np.random.default_rng(row)
    items = np.sort(rng.choice(first, size=num_candidates, replace=False))
    request = {}
    for name, values in features.items():
        if name in CANDIDATE_INPUTS:
            request[name] = values[items]
        else:  # query feature: the one user, repeated
            request[name] = np.repeat(values[row:row + 1], num_candidates, axis=0)
    desc = {"user_id": request["user_id"][0].decode(), "test_row": row, "num_candidates": num_candidates,
            "history_length": int(request["history"].shape[1]),
            "nonempty_history": int((request["history"][0] != b"").sum()),
            "inputs": {k: [str(v.dtype), list(v.shape)] for k, v in request.items()}}
    return {k: tf.constant(v) for k, v in request.items()}, desc


def variants(model, saved, request: dict, mc_samples, naive_samples, seed: int, export_t: int) -> dict:
    """{name: {"call": zero-argument callable returning outputs, "fn": tf.function or None, "T": samples or None,
    "kind": main | diagnostic}}.

    Keras variants are traced on the serving signature's input specs (batch dimension None), as
    the SavedModel is. ``noise_T`` times the MC noise alone (one [T, 1, width] mask per head
    layer, shared by the request's rows).
    """
    specs = {k: tf.TensorSpec([None] * v.shape.rank, v.dtype, name=k) for k, v in request.items()}

    def keras(fn, t=None, kind="main", static=False):
        f = tf.function(fn) if static else tf.function(fn, input_signature=[specs])
        return {"call": lambda: f(request), "fn": f, "T": t, "kind": kind}

    def det(x):
        return {h: tf.sigmoid(v) for h, v in model(x, training=False).items()}

    def mc(t):
        return lambda x: {h: summarize(v) for h, v in mc_logits(model, x, t, seed).items()}

    def naive(t):
        return lambda x: {h: summarize(v) for h, v in naive_mc_logits(model, x, t, seed).items()}

    out = {"deterministic": keras(det)}
    for t in mc_samples:
        out[f"mc_{t}"] = keras(mc(t), t)
    for t in naive_samples:
        out[f"naive_{t}"] = keras(naive(t), t)
    serving, sampled = saved.signatures["serving_default"], saved.signatures["predict_with_uncertainty"]
    out["saved_serving_default"] = {"call": lambda: serving(**request), "fn": None, "T": None, "kind": "main"}
    out[f"saved_predict_with_uncertainty_{export_t}"] = {"call": lambda: sampled(**request), "fn": None, "T": export_t,
                                                         "kind": "main"}
    out[f"noise_{AIM_T}"] = keras(lambda x: head_noise(model, AIM_T, seed), AIM_T, "diagnostic")
    return out


def measure(fns: dict, args) -> tuple[dict, dict]:
    """Round-robin timing; returns ({name: stats}, {name: trace count})."""
    calls = {name: (lambda r, call=v["call"]: call()) for name, v in fns.items()}
    estimate = warm_up(calls, args.warmup)
    reps = {name: max(args.min_reps, min(args.reps, int(args.budget / max(est, 1e-9)))) for name, est in estimate.items()}
    times = round_robin(calls, reps, args.seed)
    stats = {}
    for name, ms in times.items():
        ms = np.asarray(ms)
        p50, p90 = np.percentile(ms, [50, 90])
        stats[name] = {"p50_ms": float(p50), "p90_ms": float(p90), "mean_ms": float(ms.mean()),
                       "min_ms": float(ms.min()), "reps": int(ms.size)}
    traces = {name: int(v["fn"].experimental_get_tracing_count()) for name, v in fns.items() if v["fn"] is not None}
    return stats, traces


def agreement(model, request: dict, t: int, seed: int) -> dict:
    """Max |difference| between the trunk-once and the naive sampler's MC mean and std."""
    fast, slow = mc_logits(model, request, t, seed), naive_mc_logits(model, request, t, seed)
    out = {}
    for head in model.head_names:
        (m1, s1), (m2, s2) = summarize(fast[head]), summarize(slow[head])
        out[head] = {"max_abs_diff_mean": float(tf.reduce_max(tf.abs(m1 - m2))),
                     "max_abs_diff_std": float(tf.reduce_max(tf.abs(s1 - s2)))}
    return out


def table(result: dict, kind: str) -> str:
    lines = ["| variant | T | p50 ms | p90 ms | mean ms | reps | p50 / det | mean / det |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in result["latency"].items():
        if s["kind"] != kind:
            continue
        t = s["num_samples"]
        lines.append(f"| {name} | {t if t else '-'} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['mean_ms']:.2f} "
                     f"| {s['reps']} | {s['ratio_p50_vs_deterministic']:.2f}x | {s['ratio_mean_vs_deterministic']:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", default=None, help="run dir with a trained ranker (trained there when it has none; "
                                                    "default: a temporary one)")
    ap.add_argument("--epochs", type=int, default=1, help="ranker epochs when training")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--row", type=int, default=0, help="test row whose user features make the request")
    ap.add_argument("--mc-samples", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--naive-samples", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--reps", type=int, default=500, help="timed calls per variant (at most)")
    ap.add_argument("--min-reps", type=int, default=30, help="timed calls per variant (at least)")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds of timed calls per variant, roughly")
    ap.add_argument("--warmup", type=int, default=10, help="untimed calls after the tracing one")
    ap.add_argument("--seed", type=int, default=0, help="order of the round-robin")
    ap.add_argument("--out", default=str(ROOT / "bench/results/ranker.json"))
    args = ap.parse_args(argv)
    started = time.perf_counter()

    tmp = Path(tempfile.mkdtemp(prefix="bench_ranker_"))
    trained, path, info = prepare(args, tmp)
    request, desc = make_request(trained, args.candidates, args.row)
    saved = tf.saved_model.load(str(path))
    export_t = info["mc_samples"]
    fns = variants(trained.model, saved, request, args.mc_samples, args.naive_samples, info["seed"], export_t)
    print(f"timing {len(fns)} variants on one request of {args.candidates} candidates", flush=True)
    stats, traces = measure(fns, args)

    base = stats["deterministic"]
    for name, st in stats.items():
        st.update(num_samples=fns[name]["T"], kind=fns[name]["kind"],
                  ratio_p50_vs_deterministic=st["p50_ms"] / base["p50_ms"],
                  ratio_mean_vs_deterministic=st["mean_ms"] / base["mean_ms"])
    for t in args.naive_samples:
        if f"mc_{t}" in stats:
            stats[f"naive_{t}"]["ratio_p50_vs_mc_same_T"] = stats[f"naive_{t}"]["p50_ms"] / stats[f"mc_{t}"]["p50_ms"]
    p50 = {name: st["p50_ms"] for name, st in stats.items()}
    saved_ratio = p50[f"saved_predict_with_uncertainty_{export_t}"] / p50["saved_serving_default"]
    aim = {"statement": f"MC at T={AIM_T} within {AIM_RATIO}x of one deterministic pass (p50 ratio)",
           "limit": AIM_RATIO}
    if f"mc_{AIM_T}" in stats:
        ratio = stats[f"mc_{AIM_T}"]["ratio_p50_vs_deterministic"]
        aim.update(keras_ratio_p50=ratio, keras_holds=bool(ratio <= AIM_RATIO))
    if export_t == AIM_T:
        aim.update(saved_model_ratio_p50=saved_ratio, saved_model_holds=bool(saved_ratio <= AIM_RATIO))
    if f"mc_{AIM_T}" in stats:
        aim["noise_share_of_mc_p50"] = p50[f"noise_{AIM_T}"] / p50[f"mc_{AIM_T}"]

    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "sched_affinity": len(os.sched_getaffinity(0)),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "tensorflow_recommenders": md.version("tensorflow-recommenders"),
                    "numpy": np.__version__,
                    "tf_intra_op_parallelism_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                    "tf_inter_op_parallelism_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                    "tf_threads_note": "0 = TensorFlow's default (one per core)",
                    "visible_gpus": len(tf.config.list_physical_devices("GPU"))},
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "git": git_state()["state"], "args": vars(args), "model": info, "request": desc,
        "tracing_counts": traces,
        "latency": stats,
        "saved_model_ratio_p50_uncertainty_vs_serving_default": saved_ratio,
        "aim": aim,
        "mc_vs_naive_agreement": agreement(trained.model, request, min(args.naive_samples + [AIM_T]), info["seed"]),
    }
    retraced = {k: v for k, v in traces.items() if v != 1}
    if retraced:
        print(f"warning: retraced during timing: {retraced}", flush=True)
    result["wall_seconds"] = time.perf_counter() - started
    atomic_write_json(args.out, result)
    print("\n" + table(result, "main") + "\n")
    print("diagnostics (noise_T: head_noise alone):\n")
    print(table(result, "diagnostic") + "\n")
    verdict = {True: "holds", False: "does not hold"}
    if "keras_ratio_p50" in aim:
        print(f"aim ({aim['statement']}):")
        print(f"  Keras mc_{AIM_T} / deterministic: {aim['keras_ratio_p50']:.3f}x -> {verdict[aim['keras_holds']]}")
    if "saved_model_ratio_p50" in aim:
        print(f"  SavedModel predict_with_uncertainty / serving_default: {saved_ratio:.3f}x -> "
              f"{verdict[aim['saved_model_holds']]}")
    if "noise_share_of_mc_p50" in aim:
        print(f"  noise generation alone is {aim['noise_share_of_mc_p50']:.0%} of mc_{AIM_T}'s p50")
    print(f"cpu_count {os.cpu_count()}, tf intra/inter threads "
          f"{result['machine']['tf_intra_op_parallelism_threads']}/{result['machine']['tf_inter_op_parallelism_threads']}"
          f" (0 = default)")
    print(f"\nwrote {args.out} ({result['wall_seconds']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
