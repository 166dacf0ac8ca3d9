#!/usr/bin/python3
"""The cluster-size study of the paper: accuracy against cluster size N, for ternary and 4-bit.

    scripts/sweep_clusters.py [--out models/sweep] [--shape kernels|channels] [--sizes 1,2,4,...,full]
                              [--encodings ternary,int4] [--method gptq|rtn] [--threads T] [--bin build/bin]

Builds trit (scripts/build.sh), converts the real ResNet-50 at every N and scores it on two folds of
../shared/data/imagenet-sample (scripts/two_folds.py: calibrated on one half of the photos,
scored on the other, swapped; no photo is scored by a model calibrated on it). Writes, in --out,
beside two_folds.py's models, logs, folds.md and folds.json:
  sweep.csv    encoding, N, top-1 (pooled and per fold), top-5, drop from float32, agreement,
               logit SQNR against float32 (pooled and per fold), cross-entropy on the labels,
               replaced share, file size, conversion time (the folds' mean) and peak memory
  sweep.md     the same as a Markdown table
  sweep.png    top-1 and logit SQNR against N per encoding, the share of multiplications replaced
               by additions on the top-1 panel's second axis
Converted models are kept and reused (delete them to redo): NAME-f1.trit and NAME-f2.trit with
NAME = ENCODING-nN (with -channels or -rtn when those are asked for).
"""
import argparse
import csv
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_imagenet  # noqa: E402  (run_step: one line when a step fails)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(ROOT, "models", "sweep"))
    p.add_argument("--shape", default="kernels", choices=["kernels", "channels"])
    p.add_argument("--sizes", default="1,2,4,8,16,32,64,full")
    p.add_argument("--encodings", default="ternary,int4")
    p.add_argument("--method", default="gptq", choices=["gptq", "rtn"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    a = p.parse_args(argv)
    sizes = a.sizes.split(",")
    for n in sizes:
        if n != "full" and not n.isdigit():
            raise SystemExit(f"sweep_clusters: cluster size '{n}' is neither a number nor 'full'")
    encodings = a.encodings.split(",")
    for e in encodings:
        if e not in ("ternary", "int4"):
            raise SystemExit(f"sweep_clusters: encoding '{e}' is not ternary or int4")

    eval_imagenet.run_step("sweep_clusters", [os.path.join(ROOT, "scripts", "build.sh")], stdout=subprocess.DEVNULL)
    suffix = ("-channels" if a.shape == "channels" else "") + ("-rtn" if a.method == "rtn" else "")
    extra = ["--cluster-shape", a.shape, "--method", a.method] + (["--no-bias-correction"] if a.method == "rtn" else [])
    points = [(e, n, f"{e}-n{n}{suffix}") for e in encodings for n in sizes]
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "two_folds.py"), "--out", a.out, "--bin", a.bin,
           "--threads", str(a.threads)]
    for e, n, name in points:
        cmd += ["--config", f"{name}=" + " ".join(["--weights", e, "--cluster", n] + extra)]
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("sweep_clusters: two_folds.py failed")
    with open(os.path.join(a.out, "folds.json")) as f:
        by_name = {r["config"]: r for r in json.load(f)}

    rows = []
    for e, n, name in points:
        r = by_name[name]
        rows.append({"encoding": e, "N": n, "top1": r["top1"], "fold1_top1": r["fold1_top1"], "fold2_top1": r["fold2_top1"],
                     "top5": r["top5"], "drop": r["drop"], "agreement": r["agreement"], "sqnr_db": r["sqnr_db"],
                     "fold1_sqnr_db": r["fold1_sqnr_db"], "fold2_sqnr_db": r["fold2_sqnr_db"],
                     "cross_entropy": r["cross_entropy"], "replaced": r["replaced"],
                     "megabytes": r["megabytes"], "seconds": r["seconds"], "peak_mb": r["peak_mb"]})
    float_top1 = by_name[points[0][2]]["float_top1"]
    images = by_name[points[0][2]]["images"]
    with open(os.path.join(a.out, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    def opt(x, fmt):
        return "-" if x is None else fmt.format(x)

    md = [f"ResNet-50, {a.shape} clusters, {a.method}, two folds of {images} photos (calibrated on one half, scored "
          f"on the other, swapped); float32 top-1 {100 * float_top1:.1f} %.", "",
          "| weights | N | fold 1: top-1, SQNR | fold 2: top-1, SQNR | top-1 | top-5 | drop | agreement | logit SQNR "
          "| cross-entropy | replaced | file | conversion | peak memory |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['encoding']} | {r['N']} | {100 * r['fold1_top1']:.1f} %, {opt(r['fold1_sqnr_db'], '{:.1f} dB')} | "
                  f"{100 * r['fold2_top1']:.1f} %, {opt(r['fold2_sqnr_db'], '{:.1f} dB')} | {100 * r['top1']:.1f} % | "
                  f"{100 * r['top5']:.1f} % | {100 * r['drop']:+.1f} | {100 * r['agreement']:.1f} % | "
                  f"{opt(r['sqnr_db'], '{:.1f} dB')} | {r['cross_entropy']:.3f} | {100 * r['replaced']:.1f} % | "
                  f"{r['megabytes']:.1f} MB | "
                  f"{opt(r['seconds'], '{:.0f} s')} | {opt(r['peak_mb'], '{} MB')} |")
    with open(os.path.join(a.out, "sweep.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    plot(rows, sizes, float_top1, os.path.join(a.out, "sweep.png"),
         f"ResNet-50, {a.shape} clusters, {a.method}: two folds, {images} photos scored")


def plot(rows, sizes, float_top1, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("sweep_clusters: the plot needs python3-matplotlib (apt-get install python3-matplotlib)")
    xs = list(range(len(sizes)))  # N = 1, 2, 4, ... equally spaced: a log2 axis, with 'full' last
    fig, (ax, sq) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax.axhline(100 * float_top1, color="gray", linestyle="--", linewidth=1, label=f"float32 ({100 * float_top1:.1f} %)")
    colours = {"ternary": "tab:orange", "int4": "tab:green"}
    right = ax.twinx()
    replaced_drawn = False
    for e, colour in colours.items():
        pts = [r for r in rows if r["encoding"] == e]
        if not pts:
            continue
        ax.plot(xs, [100 * r["top1"] for r in pts], marker="o", color=colour, label=f"{e} top-1 (pooled)")
        for fold, marker in (("fold1_top1", "x"), ("fold2_top1", "+")):
            ax.plot(xs, [100 * r[fold] for r in pts], marker, color=colour, alpha=0.5)
        sq.plot(xs, [r["sqnr_db"] for r in pts], marker="s", color=colour, label=e)
        if e == "ternary":
            right.plot(xs, [100 * r["replaced"] for r in pts], marker="s", linestyle=":", color="tab:purple",
                       label="ternary: multiplications replaced")
            replaced_drawn = True
    for a in (ax, sq):
        a.set_xticks(xs)
        a.set_xticklabels(sizes)
        a.set_xlabel("cluster size N (input channels sharing one scale)")
    ax.set_ylabel("held-out top-1 (%); x + each fold")
    ax.set_ylim(0, 100)
    right.set_ylabel("multiplications replaced by additions (%)")
    right.set_ylim(0, 100)
    handles, labels = ax.get_legend_handles_labels()
    if replaced_drawn:
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="lower left", fontsize=8)
    sq.set_ylabel("logit SQNR against float32 (dB), both folds")
    sq.legend(fontsize=8)
    sq.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
