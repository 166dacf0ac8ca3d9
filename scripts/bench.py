#!/usr/bin/python3
"""trit against ONNX Runtime on the real ResNet-50, side by side, in one run.

  /usr/bin/python3 scripts/bench.py [--threads 1,2] [--batches 1,8] [--rounds 3] [--iters 20]
                                    [--isas amx,avx512vnni] [--json OUT] [MODEL.trit ...]

Runs, alternating, round after round: ../shared/bench/ort-bench.sh on the same ONNX graph
(batch norm folded by scripts/onnx_for_peers.py) in float32 and as its int8 QDQ copy
(../shared/bench/make-qdq.py), and build/bin/trit-bench on each trit model; for every thread
count and batch size; ternary and int4 models also with their weights packed (--packed). Prints
each figure's median over the rounds and its best round (on a host with stolen time, the least
disturbed), the ratio of each trit model to its peer (integer models:
ONNX Runtime int8; the float32 model: ONNX Runtime float32; below 1: trit is faster), the
weights' memory (packed: with the expansion buffer), the peak resident memory of trit-bench
and, when ../shared/bench/peak.cpp runs here (it needs AVX-512 VNNI), the share of the machine's
int8 ceiling (vpdpbusd's: the amx path's tiles can pass it). --isas runs the integer models on each
named kernel path (the first one also packed) instead of the best this CPU runs.

Default models (converted once if missing, calibrated on ../shared/data/imagenet-sample):
models/resnet50-ternary-n4-kernels.trit, models/resnet50-int8.trit, models/resnet50-int4-n4.trit,
and the float32 models/resnet50.trit (scripts/demo.sh makes it; converted here if missing).
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
    "resnet50.trit": [],  # float32: no calibration
}
ORT_INT8, ORT_FLOAT = "onnxruntime int8", "onnxruntime float32"


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
            calibrate = ["--calib", calib, "--calib-count", "50"] if DEFAULTS[base] else []
            if calibrate and not os.path.isdir(calib):
                sys.exit(f"bench: cannot make '{path}': no calibration images in {calib}")
            print(f"converting {base}{' (calibration on 50 photos, about two minutes)' if calibrate else ''}", flush=True)
            run([os.path.join(BIN, "trit-convert"), onnx, "-o", path, "--preset", "keras-resnet50",
                 "--labels", os.path.join(MODELS, "resnet50.labels.txt")] + calibrate + DEFAULTS[base])
        out.append(path)
    peer = os.path.join(MODELS, "resnet50-peer.onnx")
    qdq = os.path.join(MODELS, "resnet50-qdq.onnx")
    if not os.path.exists(peer):
        run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "onnx_for_peers.py"), onnx, peer])
    if not os.path.exists(qdq):
        run(["/usr/bin/python3", os.path.join(SHARED, "bench", "make-qdq.py"), peer, qdq])
    return out, {ORT_INT8: qdq, ORT_FLOAT: peer}


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
    ap.add_argument("--isas", help="integer models on each of these paths (ref, avx2, avx512vnni, amx)")
    ap.add_argument("--json", help="write every figure here")
    a = ap.parse_args()
    need(os.path.join(BIN, "trit-bench"), "trit-bench (scripts/build.sh)")
    need(os.path.join(SHARED, "bench", "ort-bench.sh"), "the peer benchmark")
    models, peers = prepare_models(a.models)
    threads = [int(t) for t in a.threads.split(",")]
    batches = [int(b) for b in a.batches.split(",")]
    peak = ceilings()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores; ceiling (vpdpbusd) {peak or 'not measured'} GMAC/s", flush=True)
    # Every model as loaded by default, and the integer models that have packable layers packed
    # too (trit-bench --packed: the same answers, weights kept as codes and scales).
    runs = []  # (label, path, extra arguments)
    isas = a.isas.split(",") if a.isas else [None]
    for m in models:
        probe = json.loads(run([os.path.join(BIN, "trit-bench"), m, "--packed", "--iters", "1", "--warmup", "0",
                                "--json"]))
        paths = [None] if probe["isa"].startswith("float32") else isas
        for i, isa in enumerate(paths):
            name = os.path.basename(m) + (f" [{isa}]" if isa else "")
            args = ["--isa", isa] if isa else []
            runs.append((name, m, args))
            if i == 0 and probe.get("expansion_bytes", 0) > 0:
                runs.append((name + " --packed", m, args + ["--packed"]))
    times = {}  # (who, threads, batch) -> [ms per image]
    extra = {}
    for r in range(a.rounds):
        for t in threads:
            for b in batches:
                iters = max(3, a.iters // b)
                for who, onnx in peers.items():
                    line = run(["bash", os.path.join(SHARED, "bench", "ort-bench.sh"), onnx, str(t), str(b), "3",
                                str(iters)])
                    times.setdefault((who, t, b), []).append(json.loads(line.strip().splitlines()[-1])["ms_per_image"])
                for label, m, args in runs:
                    res = json.loads(run([os.path.join(BIN, "trit-bench"), m, "--threads", str(t), "--batch", str(b),
                                          "--iters", str(iters), "--warmup", "3", "--json"] + args))
                    key = (label, t, b)
                    times.setdefault(key, []).append(res["ms_per_image"])
                    extra[key] = {k: res[k] for k in ("isa", "peak_rss_bytes", "arena_bytes", "arena_lower_bound",
                                                      "weight_bytes", "expansion_bytes", "gmacs_per_image") if k in res}
                print(f"round {r + 1}/{a.rounds}: threads {t}, batch {b} done", flush=True)
    rows = []
    print()
    print("| model | threads | batch | ms/image (median of rounds) | best round | peer | ratio to the peer (median, best) "
          "| share of int8 ceiling | weights MB | peak resident MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    gmacs = next((e["gmacs_per_image"] for e in extra.values() if "gmacs_per_image" in e), 0)
    for t in threads:
        for b in batches:
            for who in list(peers) + [label for label, _, _ in runs]:
                ms, best = statistics.median(times[(who, t, b)]), min(times[(who, t, b)])
                peer = who if who in peers else ORT_FLOAT if extra[(who, t, b)]["isa"].startswith("float32") else ORT_INT8
                ref, ref_best = statistics.median(times[(peer, t, b)]), min(times[(peer, t, b)])
                share = f"{100 * gmacs / (ms / 1e3) / peak[t]:.0f} %" if t in peak and gmacs else "-"
                ratio = "1" if who == peer else f"{ms / ref:.2f}, {best / ref_best:.2f}"
                e = extra.get((who, t, b), {})
                mem = (f"{(e['weight_bytes'] + e.get('expansion_bytes', 0)) / 1e6:.1f} | {e['peak_rss_bytes'] / 1e6:.1f}"
                       if e else "- | -")
                print(f"| {who} | {t} | {b} | {ms:.2f} | {best:.2f} | {peer} | {ratio} | {share} | {mem} |")
                rows.append({"who": who, "threads": t, "batch": b, "ms_per_image": ms, "peer": peer,
                             "ratio_to_peer": ms / ref, "runs": times[(who, t, b)], **extra.get((who, t, b), {})})
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": cpu, "ceiling_gmacs": peak, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
