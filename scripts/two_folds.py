#!/usr/bin/python3
"""Quantization measured the honest way: two folds, no photo scored by a model calibrated on it.

    scripts/two_folds.py --config NAME="TRIT-CONVERT OPTIONS" [--config ...] [--out models/folds]
                         [--data ../shared/data/imagenet-sample] [--model resnet50] [--threads T]

Each --config is converted twice from the real ResNet-50 (scripts/fetch_resnet50.sh), calibrated
on one half of --data's photos (every other photo in name order: trit-convert --calib-list with
--calib-shard 1/2, then 2/2), and each is scored, beside the float32 model, on the other half
(trit-eval --list). Per config and fold: top-1, logit SQNR against float32, cross-entropy on the
labels; pooled over both folds (every photo scored once, by the model that did not see it):
top-1, top-5, drop from float32, top-1 agreement with float32, logit SQNR (the sums of both
folds), cross-entropy, the share of multiplications replaced, file size, conversion time and
peak memory (from trit-convert's last line; the mean of the two folds).

Each model's cross-entropy is also given at its own fitted temperature T (the one that minimizes
its mean cross-entropy of softmax(logits / T) on the fold's scored photos; from trit-eval's
--logits): a change in the logits' overall scale moves the plain cross-entropy and the logit
SQNR without changing any ranking, and the fitted temperature takes it out.

With two configs or more, a second table compares each with the first on the same photos: the
change in top-1, in cross-entropy and in cross-entropy at fitted T, each with its standard error
over the photos (paired: the same photo under both models). On 500 photos top-1's standard error
is about a point, the cross-entropy's a few hundredths: a change that is several standard errors
in the cross-entropy at fitted T, in both folds, is one a larger set of photos would show in
top-1 too.

With --calib-extra DIR every fold also calibrates on DIR's images (all of them, in name order,
after its half): more photos for the conversion, none of them scored (imagenette-1000, say).

With --model resnet8 the CIFAR-10 ResNet-8 of ../shared/data/resnet8-cifar10 is used instead,
on its 1000 photos (a folder per class).

Writes, in --out: NAME-f1.trit / NAME-f2.trit with their logs and reports, fold1.json and
fold2.json (trit-eval's results), fold1-logits.npy and fold2-logits.npy (every logit: [photos,
models, classes]), folds.md (the table) and folds.json (the figures).
Converted models are kept and reused (delete them to redo).
"""
import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_imagenet  # noqa: E402  (the totals are defined there)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")


def sh(cmd, **kw):
    return eval_imagenet.run_step("two_folds", cmd, **kw)


def parse_configs(items):
    configs = []
    for item in items:
        name, eq, args = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise SystemExit(f"two_folds: --config '{item}' is not NAME=\"OPTIONS\" (NAME of letters, digits, -_.+)")
        configs.append((name, shlex.split(args)))
    return configs


def conversion_figures(log):
    """(seconds, peak MB) from trit-convert's last line, or (None, None)."""
    with open(log) as f:
        m = re.search(r"; ([0-9.]+) s, peak memory ([0-9]+) MB", f.read())
    return (float(m.group(1)), int(m.group(2))) if m else (None, None)


def paired(image, c, key):
    """Config c's value on one photo minus the first config's (column 1 of trit-eval's records:
    the float32 model is column 0): correct or not in top-1, cross-entropy, or cross-entropy at
    each model's fitted temperature."""
    if key == "top1":
        return float(eval_imagenet.correct1(image, c)) - float(eval_imagenet.correct1(image, 1))
    if key == "cross_entropy_fitted":
        return image["nll_fitted"][c] - image["nll_fitted"][1]
    return image["nll"][c] - image["nll"][1]


def nll_at(logits, truth, beta):
    """Per image, -log softmax(beta * logits) at the true class (nats). logits [images, classes],
    truth [images]."""
    z = beta * logits.astype(np.float64)
    top = z.max(axis=1, keepdims=True)
    return np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(len(truth)), truth]


def fitted_temperature(logits, truth):
    """The temperature T that minimizes the mean cross-entropy of softmax(logits / T) on the labels.
    The mean is convex in beta = 1/T: its derivative is the mean of E_p[z] - z[truth], its second
    the mean of Var_p[z]; Newton's method from beta = 1, halving a step that does not lower it."""
    z = logits.astype(np.float64)
    rows = np.arange(len(truth))
    beta = 1.0
    loss = nll_at(z, truth, beta).mean()
    for _ in range(100):
        p = np.exp(beta * z - (beta * z).max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        mean_z = (p * z).sum(axis=1)
        grad = (mean_z - z[rows, truth]).mean()
        hess = ((p * z * z).sum(axis=1) - mean_z ** 2).mean()
        if abs(grad) < 1e-10 or hess <= 0:
            break
        step = grad / hess
        while True:
            trial = beta - step
            trial_loss = nll_at(z, truth, trial).mean() if trial > 0 else math.inf
            if trial_loss <= loss or abs(step) < 1e-12:
                break
            step /= 2
        if trial_loss > loss:
            break
        beta, loss = trial, trial_loss
    return 1 / beta


def mean_and_error(d):
    """The mean of d and its standard error (sample standard deviation / sqrt(n))."""
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var / n)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", action="append", required=True, help='NAME="trit-convert options" (repeat)')
    p.add_argument("--out", default=os.path.join(ROOT, "models", "folds"))
    p.add_argument("--model", default="resnet50", choices=["resnet50", "resnet8"])
    p.add_argument("--data", help="ResNet-50's photos (default ../shared/data/imagenet-sample)")
    p.add_argument("--calib-extra", help="a folder of photos every fold also calibrates on (never scored)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"),
                   help="where trit-convert and trit-eval are (a copy keeps a long run from a rebuild)")
    a = p.parse_args(argv)
    configs = parse_configs(a.config)
    bin_dir = a.bin
    extra = []
    if a.calib_extra:
        if not os.path.isdir(a.calib_extra):
            raise SystemExit(f"two_folds: --calib-extra '{a.calib_extra}' is not a folder")
        extra = sorted(os.path.join(root, f) for root, _, files in os.walk(a.calib_extra)
                       for f in files if eval_imagenet.is_image(f))
        if not extra:
            raise SystemExit(f"two_folds: --calib-extra '{a.calib_extra}' holds no image")
    if a.model == "resnet50":
        sh([os.path.join(ROOT, "scripts", "fetch_resnet50.sh")], stdout=subprocess.DEVNULL)
        onnx = os.path.join(ROOT, "models", "resnet50.onnx")
        base = ["--preset", "keras-resnet50", "--labels", os.path.join(ROOT, "models", "resnet50.labels.txt")]
        data = a.data or os.path.join(SHARED, "imagenet-sample")
    else:
        r8 = os.path.join(SHARED, "resnet8-cifar10")
        onnx = os.path.join(r8, "resnet8.onnx")
        os.makedirs(a.out, exist_ok=True)
        labels = os.path.join(a.out, "cifar10.labels.txt")
        with open(labels, "w") as f:
            f.write("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n")
        base = ["--preset", "raw", "--labels", labels]
        data = os.path.join(r8, "cifar10-test-1000")
    if not os.path.isdir(data):
        raise SystemExit(f"two_folds: '{data}' is absent (it comes from ../shared/data)")
    os.makedirs(a.out, exist_ok=True)

    def convert(name, args, log_name):
        path = os.path.join(a.out, name + ".trit")
        if not os.path.exists(path):
            print(f"converting {name}", file=sys.stderr, flush=True)
            start = time.time()
            with open(os.path.join(a.out, log_name), "w") as log:
                sh([os.path.join(bin_dir, "trit-convert"), onnx, "-o", path] + base + args, stderr=log)
            print(f"  {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        return path

    float_model = convert("float32", [], "float32.log")
    # Every photo in name order with its label (the WordNet id a file name starts with, or the
    # class folder), the calibration list, and each fold's half.
    photos = []
    for root, _, files in os.walk(data):
        for f in files:
            if eval_imagenet.is_image(f):
                label = f.split("_")[0] if a.model == "resnet50" else os.path.basename(root)
                photos.append((os.path.join(root, f), label))
    photos.sort()
    listing = os.path.join(a.out, "photos.txt")
    with open(listing, "w") as f:
        f.write("".join(path + "\n" for path, _ in photos))
    scored_too = {os.path.realpath(p) for p, _ in photos} & {os.path.realpath(p) for p in extra}
    if scored_too:
        raise SystemExit(f"two_folds: --calib-extra '{a.calib_extra}' holds {len(scored_too)} of the photos that are "
                         f"scored (such as '{sorted(scored_too)[0]}')")
    results = {}
    for fold in (1, 2):
        models = [float_model]
        calib = ["--calib-list", listing, "--calib-shard", f"{fold}/2", "--calib-count", "0"]
        if extra:  # the fold's half (as --calib-shard takes it), then the extra photos
            fold_list = os.path.join(a.out, f"calib{fold}.txt")
            with open(fold_list, "w") as f:
                f.write("".join(path + "\n" for path, _ in photos[fold - 1::2]) + "".join(path + "\n" for path in extra))
            calib = ["--calib-list", fold_list, "--calib-count", "0"]
        for name, args in configs:
            models.append(convert(f"{name}-f{fold}", args + calib + ["--report", os.path.join(a.out, f"{name}-f{fold}.json")],
                                  f"{name}-f{fold}.log"))
        out = os.path.join(a.out, f"fold{fold}.json")
        logits = os.path.join(a.out, f"fold{fold}-logits.npy")
        if os.path.exists(out):  # scored before: kept if it scored these very models
            with open(out) as f:
                old = json.load(f)
            if [m["model"] for m in old["models"]] != models or "nll" not in old["per_image"][0] or not os.path.exists(logits):
                os.remove(out)
        if not os.path.exists(out):
            scored = os.path.join(a.out, f"scored{fold}.txt")  # the other half
            with open(scored, "w") as f:
                f.write("".join(f"{path}\t{label}\n" for path, label in photos[2 - fold::2]))
            cmd = [os.path.join(bin_dir, "trit-eval"), "--list", scored, "--json", out, "--logits", logits]
            for m in models:
                cmd += ["-m", m]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            sh(cmd, stdout=subprocess.DEVNULL)
        with open(out) as f:
            results[fold] = json.load(f)
        # Each model's cross-entropy at its own fitted temperature, per photo: free of the logits'
        # overall scale, which moves the plain cross-entropy without changing any ranking.
        every = np.load(logits)
        records = results[fold]["per_image"]
        results[fold]["temperature"] = []
        fitted = []
        for m in range(every.shape[1]):
            truth = np.array([r["truth"][m] for r in records])
            t = fitted_temperature(every[:, m], truth)
            results[fold]["temperature"].append(t)
            fitted.append(nll_at(every[:, m], truth, 1 / t))
        for i, r in enumerate(records):
            r["nll_fitted"] = [float(f[i]) for f in fitted]

    totals = {fold: eval_imagenet.totals(results[fold]) for fold in (1, 2)}
    counts = {fold: len(results[fold]["per_image"]) for fold in (1, 2)}
    images = counts[1] + counts[2]

    def pooled(m, key):
        """Model m's figure over both folds: each fold's weighted by its photos."""
        return sum(totals[f][m][key] * counts[f] for f in (1, 2)) / images

    def fitted_mean(m):
        """Model m's cross-entropy at its fitted temperatures, over both folds' photos."""
        return sum(r["nll_fitted"][m] for f in (1, 2) for r in results[f]["per_image"]) / images

    float1 = sum(totals[f][0]["correct1"] for f in (1, 2))
    rows = []
    for c, (name, _) in enumerate(configs, start=1):
        row = {"config": name, "options": " ".join(shlex.quote(x) for x in configs[c - 1][1])}
        signal = noise = 0.0
        for fold in (1, 2):
            t = totals[fold][c]
            row[f"fold{fold}_top1"] = t["top1"]
            row[f"fold{fold}_sqnr_db"] = t["logit_sqnr_db"]
            row[f"fold{fold}_cross_entropy"] = t["cross_entropy"]
            row[f"fold{fold}_temperature"] = results[fold]["temperature"][c]
            signal += sum(i["logit_signal"] for i in results[fold]["per_image"])
            noise += sum(i["logit_error"][c] for i in results[fold]["per_image"])
        correct1 = sum(totals[f][c]["correct1"] for f in (1, 2))
        row.update(top1=correct1 / images, top5=pooled(c, "top5"), drop=(float1 - correct1) / images,
                   agreement=pooled(c, "agreement"), sqnr_db=10 * math.log10(signal / noise) if noise > 0 else None,
                   float_top1=float1 / images, images=images, cross_entropy=pooled(c, "cross_entropy"),
                   float_cross_entropy=pooled(0, "cross_entropy"),
                   cross_entropy_fitted=fitted_mean(c), float_cross_entropy_fitted=fitted_mean(0))
        reports = []
        for fold in (1, 2):
            with open(os.path.join(a.out, f"{name}-f{fold}.json")) as f:
                reports.append(json.load(f))
        row["replaced"] = reports[0]["multiplications_replaced"]
        row["megabytes"] = os.path.getsize(os.path.join(a.out, f"{name}-f1.trit")) / 1e6
        figures = [conversion_figures(os.path.join(a.out, f"{name}-f{fold}.log")) for fold in (1, 2)]
        row["seconds"] = sum(s for s, _ in figures if s) / 2 if all(s for s, _ in figures) else None
        row["peak_mb"] = max(m for _, m in figures if m) if all(m for _, m in figures) else None
        rows.append(row)

    def pct(x):
        return f"{100 * x:.1f} %"

    def db(x):
        return "-" if x is None else f"{x:.1f} dB"

    def secs(x):
        return "-" if x is None else f"{x:.0f} s"

    md = [f"{a.model}, two folds of {rows[0]['images'] if rows else 0} photos of {data} (calibrate on one half, score "
          f"the other, swap); float32 top-1 {pct(rows[0]['float_top1']) if rows else '-'}, cross-entropy "
          f"{rows[0]['float_cross_entropy']:.3f}, at its fitted temperature {rows[0]['float_cross_entropy_fitted']:.3f}"
          if rows else "",
          "",
          "| config | fold 1: top-1, SQNR, cross-entropy | fold 2: top-1, SQNR, cross-entropy | top-1 | top-5 | drop | "
          "agreement | logit SQNR | cross-entropy | at fitted T (T per fold) | replaced | file | conversion | peak memory |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['config']} | {pct(r['fold1_top1'])}, {db(r['fold1_sqnr_db'])}, {r['fold1_cross_entropy']:.3f} | "
                  f"{pct(r['fold2_top1'])}, {db(r['fold2_sqnr_db'])}, {r['fold2_cross_entropy']:.3f} | {pct(r['top1'])} | "
                  f"{pct(r['top5'])} | {100 * r['drop']:+.1f} | {pct(r['agreement'])} | {db(r['sqnr_db'])} | "
                  f"{r['cross_entropy']:.3f} | {r['cross_entropy_fitted']:.3f} ({r['fold1_temperature']:.2f}, "
                  f"{r['fold2_temperature']:.2f}) | {pct(r['replaced'])} | "
                  f"{r['megabytes']:.1f} MB | {secs(r['seconds'])} | "
                  f"{'-' if r['peak_mb'] is None else str(r['peak_mb']) + ' MB'} |")
    if len(rows) > 1:
        md += ["", f"Against {rows[0]['config']}, on the same photos (change, its standard error over the photos; at "
               "fitted T: each model's cross-entropy at its own fitted temperature, so that a change of the logits' "
               "overall scale alone does not count):", "",
               "| config | top-1 | cross-entropy | fold 1 | fold 2 | at fitted T | fold 1 | fold 2 |",
               "|---|---|---|---|---|---|---|---|"]
        for c in range(2, len(configs) + 1):
            rows[c - 1]["against"] = dict(config=rows[0]["config"])
            cells = []
            for key, folds in (("top1", (1, 2)), ("cross_entropy", (1, 2)), ("cross_entropy", (1,)), ("cross_entropy", (2,)),
                               ("cross_entropy_fitted", (1, 2)), ("cross_entropy_fitted", (1,)),
                               ("cross_entropy_fitted", (2,))):
                d = [paired(i, c, key) for f in folds for i in results[f]["per_image"]]
                mean, se = mean_and_error(d)
                if len(folds) == 2:
                    rows[c - 1]["against"][key] = [mean, se]
                cells.append(f"{100 * mean:+.1f} ± {100 * se:.1f}" if key == "top1" else f"{mean:+.3f} ± {se:.3f}")
            md.append(f"| {rows[c - 1]['config']} | " + " | ".join(cells) + " |")
    with open(os.path.join(a.out, "folds.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(a.out, "folds.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print("\n".join(md))


if __name__ == "__main__":
    main(sys.argv[1:])
