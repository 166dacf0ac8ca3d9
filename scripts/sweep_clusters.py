#!/usr/bin/python3
"""The cluster-size study of the paper: accuracy against cluster size N, for ternary and 4-bit.

    scripts/sweep_clusters.py [--out models/sweep] [--shape kernels|channels] [--sizes 1,2,4,...,full]
                              [--encodings ternary,int4] [--method gptq|rtn] [--calib-count 50] [--threads T]

Converts the real ResNet-50 (scripts/fetch_resnet50.sh) at every N, calibrating on the first
--calib-count photos of ../shared/data/imagenet-sample (or --data), and scores every model with
the float32 model on the other photos in one trit-eval run. Writes, in --out:
  sweep.csv    encoding, N, top-1, top-5, drop from float32, agreement, logit SQNR against float32
               (dB; empty for float32), replaced share, file size
  sweep.md     the same as a Markdown table
  sweep.png    top-1 against N (log scale) per encoding, the share of multiplications replaced by
               additions on a second axis
Converted models are kept and reused (delete them to redo); each conversion's log and report
sit beside it.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_imagenet  # noqa: E402  (the totals and the table are defined there)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return eval_imagenet.run_step("sweep_clusters", cmd, **kw)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "models", "sweep"))
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "imagenet-sample"))
    p.add_argument("--shape", default="kernels", choices=["kernels", "channels"])
    p.add_argument("--sizes", default="1,2,4,8,16,32,64,full")
    p.add_argument("--encodings", default="ternary,int4")
    p.add_argument("--method", default="gptq", choices=["gptq", "rtn"])
    p.add_argument("--calib-count", type=int, default=50)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if not os.path.isdir(a.data):
        raise SystemExit(f"sweep_clusters: '{a.data}' is absent (it comes from ../shared/data)")
    sizes = a.sizes.split(",")
    for n in sizes:
        if n != "full" and not n.isdigit():
            raise SystemExit(f"sweep_clusters: cluster size '{n}' is neither a number nor 'full'")
    encodings = a.encodings.split(",")
    for e in encodings:
        if e not in ("ternary", "int4"):
            raise SystemExit(f"sweep_clusters: encoding '{e}' is not ternary or int4")

    sh([os.path.join(ROOT, "scripts", "build.sh")], stdout=subprocess.DEVNULL)
    sh([os.path.join(ROOT, "scripts", "fetch_resnet50.sh")], stdout=subprocess.DEVNULL)
    bin_dir = os.path.join(ROOT, "build", "bin")
    onnx = os.path.join(ROOT, "models", "resnet50.onnx")
    labels = os.path.join(ROOT, "models", "resnet50.labels.txt")
    os.makedirs(a.out, exist_ok=True)

    def convert(name, args):
        path = os.path.join(a.out, name + ".trit")
        if os.path.exists(path):
            return path
        print(f"converting {name}", file=sys.stderr, flush=True)
        start = time.time()
        with open(os.path.join(a.out, name + ".log"), "w") as log:
            sh([os.path.join(bin_dir, "trit-convert"), onnx, "-o", path, "--preset", "keras-resnet50", "--labels", labels,
                "--report", os.path.join(a.out, name + ".json")] + args, stderr=log)
        print(f"  {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        return path

    runs = [("float32", None, None, convert("float32", []))]
    calib = ["--calib", a.data, "--calib-count", str(a.calib_count), "--method", a.method]
    if a.method == "rtn":
        calib.append("--no-bias-correction")
    for e in encodings:
        for n in sizes:
            name = f"{e}-n{n}-{a.shape}-{a.method}"
            runs.append((name, e, n, convert(name, ["--weights", e, "--cluster", n, "--cluster-shape", a.shape] + calib)))

    result = os.path.join(a.out, "eval.json")
    cmd = [os.path.join(bin_dir, "trit-eval"), "--data", a.data, "--skip", str(a.calib_count), "--json", result]
    for _, _, _, path in runs:
        cmd += ["--model", path]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    sh(cmd, stdout=subprocess.DEVNULL)
    with open(result) as f:
        scores = json.load(f)
    images = scores["images"]
    totals = eval_imagenet.totals(scores)  # the one definition of the totals

    rows = []
    for (name, e, n, path), s in zip(runs, totals):
        replaced = 0.0
        if e:
            with open(os.path.join(a.out, name + ".json")) as f:
                replaced = json.load(f)["multiplications_replaced"]
        rows.append({"encoding": e or "float32", "N": n or "", "top1": s["top1"], "top5": s["top5"],
                     "drop": totals[0]["top1"] - s["top1"], "agreement": s["agreement"],
                     "sqnr_db": s["logit_sqnr_db"], "replaced": replaced, "megabytes": s["bytes"] / 1e6})
    with open(os.path.join(a.out, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = [f"ResNet-50, {a.shape} clusters, {a.method}, calibrated on the first {a.calib_count} photos of "
          f"{os.path.basename(os.path.normpath(a.data))}, scored on the other {images}.", "",
          "| weights | N | top-1 | top-5 | drop | top-1 agreement | logit SQNR | multiplications replaced | file |",
          "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sqnr = "" if r["sqnr_db"] is None else f"{r['sqnr_db']:.1f} dB"
        md.append(f"| {r['encoding']} | {r['N']} | {100 * r['top1']:.1f} % | {100 * r['top5']:.1f} % | "
                  f"{100 * r['drop']:+.1f} | {100 * r['agreement']:.1f} % | {sqnr} | {100 * r['replaced']:.1f} % | "
                  f"{r['megabytes']:.1f} MB |")
    with open(os.path.join(a.out, "sweep.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    plot(rows, sizes, os.path.join(a.out, "sweep.png"), f"ResNet-50, {a.shape} clusters, {a.method}, {images} photos")


def plot(rows, sizes, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("sweep_clusters: the plot needs python3-matplotlib (apt-get install python3-matplotlib)")
    xs = list(range(len(sizes)))  # N = 1, 2, 4, ... equally spaced: a log2 axis, with 'full' last
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    float_top1 = 100 * rows[0]["top1"]
    ax.axhline(float_top1, color="gray", linestyle="--", linewidth=1, label=f"float32 ({float_top1:.1f} %)")
    colours = {"ternary": "tab:orange", "int4": "tab:green"}
    replaced_drawn = False
    right = ax.twinx()
    for e in colours:
        pts = [r for r in rows if r["encoding"] == e]
        if not pts:
            continue
        ax.plot(xs[:len(pts)], [100 * r["top1"] for r in pts], marker="o", color=colours[e], label=f"{e} top-1")
        if e == "ternary":
            right.plot(xs[:len(pts)], [100 * r["replaced"] for r in pts], marker="s", linestyle=":", color="tab:purple",
                       label="ternary: multiplications replaced")
            replaced_drawn = True
    ax.set_xticks(xs)
    ax.set_xticklabels(sizes)
    ax.set_xlabel("cluster size N (input channels sharing one scale)")
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 100)
    right.set_ylabel("multiplications replaced by additions (%)")
    right.set_ylim(0, 100)
    handles, labels = ax.get_legend_handles_labels()
    if replaced_drawn:
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
