#!/usr/bin/python3
"""trit against ONNX Runtime int8 on the real ResNet-50, side by side, in one run.

  /usr/bin/python3 scripts/bench.py [--threads 1,2] [--batches 1,8] [--rounds 3] [--iters 20]
                                    [--json OUT] [MODEL.trit ...]

Runs, alternating, round after round: ../shared/bench/ort-bench.sh on the int8 QDQ copy of the
same ONNX graph (scripts/onnx_for_peers.py, then ../shared/bench/make-qdq.py), and
build/bin/trit-bench on each trit model; for every thread count and batch size. Prints each
figure's median over the rounds, the ratio trit / ONNX Runtime (below 1: trit is faster), and,
when ../shared/bench/peak.cpp builds here, the share of the machine's int8 ceiling.

Default models (converted once if missing, calibrated on ../shared/data/imagenet-sample):
models/resnet50-ternary-n4-kernels.trit, models/resnet50-int8.trit, models/resnet50-int4-n4.trit.
Needs scripts/build.sh and scripts/fetch_resnet50.sh to have run.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
MODELS = os.path.join(ROOT, "models")
BIN = os.path.join(ROOT, "build", "bin")

DEFAULTS = {
    "resnet50-ternary-n4-kernels.trit": ["--weights", "ternary", "--cluster", "4", "--cluster-shape", "kernels"],
    "resnet50-int8.trit": ["--weights", "int8"],
    "resnet50-int4-n4.trit": ["--weights", "int4", "--cluster", "4"],
}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def need(path, what):
    if not os.path.exists(path):
        sys.exit(f"bench: {what} '{path}' is missing")


def prepare_models(names):
    onnx = os.path.join(MODELS, "resnet50.onnx")
    need(onnx, "the fetched model (scripts/fetch_resnet50.sh)")
    calib = os.path.join(SHARED, "data", "imagenet-sample")
    out = []
    for name in names:
        path = name if os.path.sep in name else os.path.join(MODELS, name)
        base = os.path.basename(path)
        if not os.path.exists(path):
            if base not in DEFAULTS:
                sys.exit(f"bench: model '{path}' does not exist")
            if not os.path.isdir(calib):
                sys.exit(f"bench: cannot make '{path}': no calibration images in {calib}")
            print(f"converting {base} (calibration on 50 photos, about two minutes)", flush=True)
            run([os.path.join(BIN, "trit-convert"), onnx, "-o", path, "--preset", "keras-resnet50",
                 "--labels", os.path.join(MODELS, "resnet50.labels.txt"), "--calib", calib, "--calib-count", "50"]
                + DEFAULTS[base])
        out.append(path)
    peer = os.path.join(MODELS, "resnet50-peer.onnx")
    qdq = os.path.join(MODELS, "resnet50-qdq.onnx")
    if not os.path.exists(qdq):
        if not os.path.exists(peer):
            run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "onnx_for_peers.py"), onnx, peer])
        run(["/usr/bin/python3", os.path.join(SHARED, "bench", "make-qdq.py"), peer, qdq])
    return out, qdq


def ceilings():
    """G multiply-adds per second of vpdpbusd zmm, per thread count, from peak.cpp; {} if it cannot run."""
    src = os.path.join(SHARED, "bench", "peak.cpp")
    exe = os.path.join(ROOT, "build", "peak")
    try:
        if not os.path.exists(exe):
            run(["g++", "-O2", "-march=native", "-std=c++17", "-pthread", src, "-o", exe])
        text = run([exe])
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {}
    return {int(t): float(v) for t, v in re.findall(r"threads=(\d+)\s+vpdpbusd zmm:\s+([\d.]+) GMAC/s", text)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=list(DEFAULTS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json", help="write every figure here")
    a = ap.parse_args()
    need(os.path.join(BIN, "trit-bench"), "trit-bench (scripts/build.sh)")
    need(os.path.join(SHARED, "bench", "ort-bench.sh"), "the peer benchmark")
    models, qdq = prepare_models(a.models)
    threads = [int(t) for t in a.threads.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    peak = ceilings()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; ceiling (vpdpbusd) {peak or 'not measured'} GMAC/s", flush=True)
    times = {}  # (who, threads, batch) -> [ms per image]
    extra = {}
    for r in range(a.rounds):
        for t in threads:
            for b in batches:
                iters = max(3, a.iters // b)
                line = run(["bash", os.path.join(SHARED, "bench", "ort-bench.sh"), qdq, str(t), str(b), "3", str(iters)])
                ort = json.loads(line.strip().splitlines()[-1])
                times.setdefault(("onnxruntime int8", t, b), []).append(ort["ms_per_image"])
                for m in models:
                    res = json.loads(run([os.path.join(BIN, "trit-bench"), m, "--threads", str(t), "--batch", str(b),
                                          "--iters", str(iters), "--warmup", "3", "--json"]))
                    key = (os.path.basename(m), t, b)
                    times.setdefault(key, []).append(res["ms_per_image"])
                    extra[key] = {k: res[k] for k in ("isa", "peak_rss_bytes", "arena_bytes", "arena_lower_bound",
                                                      "weight_bytes", "gmacs_per_image")}
                print(f"round {r + 1}/{a.rounds}: threads {t}, batch {b} done", flush=True)
    rows = []
    print()
    print("| model | threads | batch | ms/image (median of rounds) | ratio to ONNX Runtime int8 | share of int8 ceiling |")
    print("|---|---|---|---|---|---|")
    for t in threads:
        for b in batches:
            ort = statistics.median(times[("onnxruntime int8", t, b)])
            for who in ["onnxruntime int8"] + [os.path.basename(m) for m in models]:
                ms = statistics.median(times[(who, t, b)])
                gmacs = next((e["gmacs_per_image"] for e in extra.values()), 0)
                share = f"{100 * gmacs / (ms / 1e3) / peak[t]:.0f} %" if t in peak and gmacs else "-"
                ratio = "1" if who.startswith("onnxruntime") else f"{ms / ort:.2f}"
                print(f"| {who} | {t} | {b} | {ms:.2f} | {ratio} | {share} |")
                rows.append({"who": who, "threads": t, "batch": b, "ms_per_image": ms, "ratio_to_ort": ms / ort,
                             "runs": times[(who, t, b)], **extra.get((who, t, b), {})})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": cpu, "ceiling_gmacs": peak, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
