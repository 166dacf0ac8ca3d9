#!/usr/bin/python3
"""What reconstruction's iterations buy: held-out top-1 and logit SQNR against --reconstruct-iters.

    scripts/reconstruct_curve.py --options "--weights ternary --cluster 4" [--iters 0,100,250,500,1000]
                                 [--model resnet8] [--out models/curve] [--bin build/bin]

Runs scripts/two_folds.py once per iteration count (0: the layer-wise result, no --reconstruct),
so every point is two folds: calibrated on one half of the photos, scored on the other, swapped.
Writes --out/curve.png (top-1 and SQNR against iterations, conversion time under each point; beside
it the cross-entropy on the labels) and --out/curve.md (the table), beside two_folds.py's
folds.md and folds.json.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--options", required=True, help="trit-convert's weight options, without --reconstruct")
    p.add_argument("--iters", default="0,100,250,500,1000")
    p.add_argument("--model", default="resnet8", choices=["resnet50", "resnet8"])
    p.add_argument("--out", default=os.path.join(ROOT, "models", "curve"))
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    a = p.parse_args(argv)
    try:
        iters = [int(x) for x in a.iters.split(",")]
    except ValueError:
        raise SystemExit(f"reconstruct_curve: --iters '{a.iters}' is not a comma-separated list of integers")
    if any(n < 0 for n in iters):
        raise SystemExit("reconstruct_curve: --iters must be 0 or more")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "two_folds.py"), "--model", a.model, "--out", a.out,
           "--bin", a.bin]
    for n in iters:
        opts = a.options if n == 0 else f"{a.options} --reconstruct --reconstruct-iters {n}"
        cmd += ["--config", f"i{n}={opts}"]
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit("reconstruct_curve: two_folds.py failed")
    with open(os.path.join(a.out, "folds.json")) as f:
        rows = {r["config"]: r for r in json.load(f)}
    points = [(n, rows[f"i{n}"]) for n in iters]

    lines = [f"{a.model}, {a.options}, two folds; iterations 0 = the layer-wise result", "",
             "| iterations | top-1 | fold 1 | fold 2 | logit SQNR | cross-entropy | conversion |", "|---|---|---|---|---|---|---|"]
    for n, r in points:
        lines.append(f"| {n} | {100 * r['top1']:.1f} % | {100 * r['fold1_top1']:.1f} % | {100 * r['fold2_top1']:.1f} % "
                     f"| {r['sqnr_db']:.2f} dB | {r['cross_entropy']:.3f} | {r['seconds']:.0f} s |")
    with open(os.path.join(a.out, "curve.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xs = [n for n, _ in points]
    fig, (ax, ce) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    ax.plot(xs, [100 * r["top1"] for _, r in points], "o-", color="tab:blue", label="held-out top-1")
    for fold, marker in (("fold1_top1", "x"), ("fold2_top1", "+")):
        ax.plot(xs, [100 * r[fold] for _, r in points], marker, color="tab:blue", alpha=0.5)
    ax.axhline(100 * points[0][1]["float_top1"], color="gray", ls="--", label="float32 top-1")
    ax.set_xlabel("--reconstruct-iters (0: layer-wise); conversion time under each point")
    ax.set_ylabel("top-1 (%), two folds pooled; x + each fold")
    for n, r in points:
        ax.annotate(f"{r['seconds']:.0f} s", (n, 100 * r["top1"]), textcoords="offset points", xytext=(0, -14),
                    ha="center", fontsize=7)
    ax2 = ax.twinx()
    ax2.plot(xs, [r["sqnr_db"] for _, r in points], "s-", color="tab:red", label="logit SQNR")
    ax2.set_ylabel("logit SQNR against float32 (dB)", color="tab:red")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)
    ax.set_title(f"{a.model} {a.options}: block reconstruction, held-out", fontsize=9)
    ce.plot(xs, [r["cross_entropy"] for _, r in points], "o-", color="tab:green", label="both folds")
    for fold, marker in (("fold1_cross_entropy", "x"), ("fold2_cross_entropy", "+")):
        ce.plot(xs, [r[fold] for _, r in points], marker, color="tab:green", alpha=0.6)
    ce.axhline(points[0][1]["float_cross_entropy"], color="gray", ls="--", label="float32")
    ce.set_xlabel("--reconstruct-iters")
    ce.set_ylabel("cross-entropy on the labels (nats); x + each fold")
    ce.legend(fontsize=8)
    ce.set_title("cross-entropy: lower is better", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, "curve.png"), dpi=120)
    print(f"wrote {os.path.join(a.out, 'curve.png')}")


if __name__ == "__main__":
    main(sys.argv[1:])
