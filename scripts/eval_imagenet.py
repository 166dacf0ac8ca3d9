#!/usr/bin/python3
"""ImageNet top-1 / top-5 of one or more trit models, on any of the usual dataset layouts.

    scripts/eval_imagenet.py --model M.trit [--model N.trit ...] --data DIR [--labels FILE]
                             [--skip N] [--limit N] [--threads T] [--shard K/N] [--json OUT]
    scripts/eval_imagenet.py merge SHARD.json [SHARD.json ...] [--json OUT]
    scripts/eval_imagenet.py --model ... --data DIR --dask tcp://SCHEDULER:8786 [--dask-shards N]

Python finds the images and their labels; build/bin/trit-eval (C++) decodes, resizes and runs
the models over a pipeline of batches, and draws the progress bar. With several models, every
model sees the same images, and the table gives each one's drop in top-1 from the first model
and the agreement of its top-1 with the first model's (put the float32 model first), and the
signal-to-noise ratio of its logits against the first model's over all images and classes
(logit SQNR, in dB: it moves with the quantization where top-1 on a few hundred images is noise),
and each model's cross-entropy on the labels (the mean of -log softmax at the true class, in
nats: a change in accuracy shows there on fewer images than in top-1).

Dataset layouts (found automatically):
  1. one folder per class, named by WordNet id (the reorganized validation set, or the train
     set): DIR/n01440764/ILSVRC2012_val_00000293.JPEG ...
  2. a flat folder plus a ground-truth file given with --labels, in either format:
     - "FILE LABEL" lines ("ILSVRC2012_val_00000001.JPEG 65", Caffe's val.txt): LABEL is a class
       index, 0-based in sorted WordNet id order (the order of the model's labels as trit-convert
       writes them for ImageNet), or a WordNet id;
     - the devkit's ILSVRC2012_validation_ground_truth.txt: one number a line, line i for
       ILSVRC2012_val_<i, 8 digits>.JPEG. The numbers are ILSVRC2012_IDs (1..1000), which are NOT
       the sorted order: they are mapped to WordNet ids through the devkit's meta.mat (the
       'synsets' table, fields ILSVRC2012_ID and WNID), found next to the ground-truth file or
       given with --meta. Reading meta.mat needs python3-scipy.
  3. file names that start with the WordNet id: DIR/n01440764_tench.JPEG (../shared/data's
     imagenet-sample).
Images are taken in file-name order; --skip drops the first N (e.g. calibration images),
--limit keeps N after that, and --shard K/N keeps every N-th of those from the K-th
(K = 1..N), so that N jobs on any scheduler cover the set exactly once. `merge` combines their
--json files into the totals one run would give. --dask runs those shards as tasks on a Dask
cluster (python3-distributed) and merges them the same way (README: on real machines, and the
same split as a Slurm array job).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
WNID = re.compile(r"^n\d{8}$")


class EvalError(Exception):
    """A problem with the user's input, reported as one line."""


def is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


# ---- ground truth -------------------------------------------------------------------------


def parse_ground_truth(path):
    """Reads a ground-truth file. Returns ("pairs", {file name: label}) for "FILE LABEL" lines,
    or ("ids", [ILSVRC2012_ID of val image 1, 2, ...]) for the devkit's one-number-a-line file."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [(n, line.strip()) for n, line in enumerate(f, 1)]
    except OSError as e:
        raise EvalError(f"cannot read ground truth '{path}': {e.strerror}") from None
    except UnicodeDecodeError:
        raise EvalError(f"cannot read ground truth '{path}': not a text file") from None
    lines = [(n, line) for n, line in lines if line]
    if not lines:
        raise EvalError(f"cannot read ground truth '{path}': the file is empty")
    if len(lines[0][1].split()) == 1:
        ids = []
        for n, line in lines:
            if not line.isdigit() or not 1 <= int(line) <= 1000:
                raise EvalError(f"cannot read ground truth '{path}': line {n} is not an ILSVRC2012_ID (1..1000)")
            ids.append(int(line))
        return "ids", ids
    pairs = {}
    for n, line in lines:
        fields = line.split()
        if len(fields) != 2:
            raise EvalError(f"cannot read ground truth '{path}': line {n} is not 'FILE LABEL'")
        name, label = os.path.basename(fields[0]), fields[1]
        if not (label.isdigit() or WNID.match(label)):
            raise EvalError(f"cannot read ground truth '{path}': line {n}: '{label}' is neither a class index nor a WordNet id")
        if name in pairs:
            raise EvalError(f"cannot read ground truth '{path}': line {n}: '{name}' appears twice")
        pairs[name] = label
    return "pairs", pairs


def read_meta(path):
    """ILSVRC2012_ID -> WordNet id, from the devkit's meta.mat."""
    try:
        import scipy.io
    except ImportError:
        raise EvalError("reading the devkit's meta.mat needs python3-scipy (apt-get install python3-scipy)") from None
    try:
        synsets = scipy.io.loadmat(path, squeeze_me=True)["synsets"]
        table = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EvalError(f"cannot read '{path}' as the devkit's meta.mat: {e}") from None
    if sorted(i for i in table if i <= 1000)[:1000] != list(range(1, 1001)):
        raise EvalError(f"'{path}' does not map ILSVRC2012_IDs 1..1000 to WordNet ids")
    return table


def val_name(index):
    return f"ILSVRC2012_val_{index:08d}"


# ---- layouts ------------------------------------------------------------------------------


def find_samples(data, labels=None, meta=None):
    """[(path, label)] in file-name order; label is a WordNet id, a class name or an index."""
    if not os.path.isdir(data):
        raise EvalError(f"cannot evaluate: '{data}' is not a folder")
    entries = sorted(os.listdir(data))
    folders = [e for e in entries if os.path.isdir(os.path.join(data, e))]
    files = [e for e in entries if os.path.isfile(os.path.join(data, e)) and is_image(e)]
    if labels:
        kind, truth = parse_ground_truth(labels)
        if kind == "ids":
            meta = meta or os.path.join(os.path.dirname(os.path.abspath(labels)), "meta.mat")
            if not os.path.exists(meta):
                raise EvalError(f"'{labels}' holds ILSVRC2012_IDs: give the devkit's meta.mat with --meta "
                                f"(looked for '{meta}')")
            wnid_of = read_meta(meta)
            truth = {val_name(i + 1): wnid_of[v] for i, v in enumerate(truth)}
            key = lambda name: os.path.splitext(name)[0]  # noqa: E731 (the ids name files without extension)
        else:
            key = lambda name: name  # noqa: E731
        out = []
        for name in files:
            if key(name) not in truth:
                raise EvalError(f"cannot evaluate: '{name}' has no label in '{labels}'")
            out.append((os.path.join(data, name), truth[key(name)]))
        if not out:
            raise EvalError(f"cannot evaluate: '{data}' holds no images")
        return out
    if folders and not files:
        out = []
        for folder in folders:
            for name in sorted(os.listdir(os.path.join(data, folder))):
                if is_image(name):
                    out.append((os.path.join(data, folder, name), folder))
        if not out:
            raise EvalError(f"cannot evaluate: the class folders of '{data}' hold no images")
        return out
    if not files:
        raise EvalError(f"cannot evaluate: '{data}' holds no images")
    out = []
    for name in files:
        prefix = name.split("_")[0].split(".")[0]
        if not WNID.match(prefix):
            raise EvalError(f"cannot evaluate: '{name}' does not start with a WordNet id, and no --labels file was given")
        out.append((os.path.join(data, name), prefix))
    return out


def parse_shard(text):
    m = re.fullmatch(r"(\d+)/(\d+)", text or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise EvalError(f"--shard '{text}': expected K/N with 1 <= K <= N")
    return int(m.group(1)), int(m.group(2))


def select(samples, skip=0, limit=0, shard=(1, 1)):
    samples = samples[skip:]
    if limit:
        samples = samples[:limit]
    k, n = shard
    return samples[k - 1::n]


# ---- results ------------------------------------------------------------------------------


def logit_sqnr(images, m):
    """SQNR in dB of model m's logits against the first model's over all images, or None (the
    first model itself, or other class counts)."""
    if m == 0:
        return None
    errors = [r["logit_error"][m] for r in images]
    signal = sum(r["logit_signal"] for r in images)
    if any(e is None for e in errors) or not sum(errors) > 0 or not signal > 0:
        return None
    return 10 * math.log10(signal / sum(errors))


def correct1(image, m):
    """Whether model m's first guess on one per-image record is its true class."""
    return image["top5"][m][:1] == [image["truth"][m]]


def cross_entropy(images, m):
    """Model m's mean cross-entropy on the labels (-log softmax at the true class, nats), or None
    (results written before trit-eval recorded it, or labels beyond the model's classes)."""
    if not images or any(r.get("nll") is None or r["nll"][m] is None for r in images):
        return None
    return sum(r["nll"][m] for r in images) / len(images)


def totals(result):
    """Recomputes each model's top-1, top-5, agreement with the first, logit SQNR against it and
    cross-entropy on the labels from per-image records."""
    images = result["per_image"]
    count = len(images)
    rows = []
    for m, model in enumerate(result["models"]):
        top1 = sum(1 for r in images if correct1(r, m))
        top5 = sum(1 for r in images if r["truth"][m] in r["top5"][m])
        agree = sum(1 for r in images if r["top5"][m][:1] == r["top5"][0][:1])
        rows.append(dict(model, top1=top1 / count, top5=top5 / count, agreement=agree / count,
                         logit_sqnr_db=logit_sqnr(images, m), cross_entropy=cross_entropy(images, m),
                         correct1=top1, correct5=top5))
    return rows


def table(result):
    rows = totals(result)
    lines = [f"{len(result['per_image'])} images, {result['seconds']:.1f} s"
             f" ({len(result['per_image']) / max(result['seconds'], 1e-9):.1f} images/s)",
             "| model | weights | top-1 | top-5 | drop in top-1 | top-1 agreement | logit SQNR | cross-entropy | file size |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sqnr = "-" if r["logit_sqnr_db"] is None else f"{r['logit_sqnr_db']:.1f} dB"
        xent = "-" if r["cross_entropy"] is None else f"{r['cross_entropy']:.3f}"
        lines.append(f"| {os.path.basename(r['model'])} | {r['weights']} | {100 * r['top1']:.2f} % | "
                     f"{100 * r['top5']:.2f} % | {100 * (rows[0]['top1'] - r['top1']):+.2f} | "
                     f"{100 * r['agreement']:.1f} % | {sqnr} | {xent} | {r['bytes'] / 1e6:.1f} MB |")
    return "\n".join(lines)


def run_step(program, cmd, **kw):
    """A tool the measuring scripts (two_folds.py, sweep_clusters.py) run: its CompletedProcess,
    or SystemExit naming the command when it fails."""
    try:
        r = subprocess.run(cmd, **kw)
    except OSError as e:  # the program itself is missing or cannot run
        raise SystemExit(f"{program}: cannot run {cmd[0]}: {e.strerror}")
    if r.returncode != 0:
        raise SystemExit(f"{program}: {' '.join(cmd[:2])} ... failed (exit {r.returncode})")
    return r


def show(result, json_out):
    """The table on stdout, and the whole result in json_out when given."""
    print(table(result))
    if json_out:
        write_json(json_out, result)


def write_json(path, result):
    result = dict(result, totals=totals(result))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def evaluate(trit_eval, models, samples, threads=0, dynamic=False, quiet=False):
    """trit-eval over (path, label) samples: its result (models, per-image records, seconds).
    quiet: no progress bar, and a failure's EvalError carries trit-eval's own one-line message
    (which names the image); what a Dask worker runs."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = os.path.join(tmp, "images.txt")
        with open(listing, "w", encoding="utf-8") as f:
            for path, label in samples:
                if "\t" in path or "\n" in path:
                    raise EvalError(f"cannot evaluate: '{path}' has a tab or newline in its name")
                f.write(f"{path}\t{label}\n")
        out = os.path.join(tmp, "result.json")
        cmd = [trit_eval, "--list", listing, "--json", out]
        for m in models:
            cmd += ["--model", m]
        if threads:
            cmd += ["--threads", str(threads)]
        if dynamic:
            cmd.append("--dynamic-exponents")
        # The progress bar goes to stderr; quiet keeps it (and any error line) to read here.
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if quiet else None, text=True)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or "").replace("\r", "\n").splitlines() if line.startswith("trit-eval:")]
            raise EvalError(lines[-1] if lines else f"trit-eval failed (exit {done.returncode})")
        with open(out, encoding="utf-8") as f:
            return json.load(f)


def describe(result, args, shard):
    """What merge checks shards by: the data, labels, --skip, --limit and the shard."""
    result["data"] = os.path.abspath(args.data)
    result["labels"] = args.labels
    result["skip"], result["limit"] = args.skip, args.limit
    result["shard"] = {"k": shard[0], "n": shard[1]}
    return result


def run(args):
    trit_eval = args.trit_eval or os.path.join(ROOT, "build", "bin", "trit-eval")
    if not os.access(trit_eval, os.X_OK):
        raise EvalError(f"'{trit_eval}' is missing: run scripts/build.sh first")
    for m in args.model:
        if not os.path.isfile(m):
            raise EvalError(f"cannot evaluate: model '{m}' does not exist")
    if args.dask:
        if args.shard != "1/1":
            raise EvalError("--dask makes its own shards (--dask-shards); it does not take --shard")
        return run_dask(args, os.path.abspath(trit_eval))
    shard = parse_shard(args.shard)
    samples = select(find_samples(args.data, args.labels, args.meta), args.skip, args.limit, shard)
    if not samples:
        raise EvalError("cannot evaluate: no images left after --skip/--limit/--shard")
    show(describe(evaluate(trit_eval, args.model, samples, args.threads, args.dynamic_exponents), args, shard), args.json)


def run_dask(args, trit_eval):
    """--dask ADDRESS: one task per shard on a Dask cluster, merged as `merge` merges. The
    workers reach the models, the images and trit-eval at the paths this machine uses (shared
    storage). A shard whose worker dies is run again elsewhere (the scheduler's allowed
    failures); a shard that fails on its own (an unreadable image) is reported with trit-eval's
    message and the run fails, after the other shards have finished."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise EvalError("--dask needs Dask distributed (Debian: python3-distributed)") from None
    import eval_imagenet as task_module  # by name, so that workers import it (upload_file)
    everything = select(find_samples(os.path.abspath(args.data), args.labels, args.meta), args.skip, args.limit)
    if not everything:
        raise EvalError("cannot evaluate: no images left after --skip/--limit")
    try:
        client = Client(args.dask, timeout="30s")
    except (OSError, TimeoutError) as e:
        raise EvalError(f"cannot reach the Dask scheduler '{args.dask}': {e}") from None
    with client:
        client.upload_file(os.path.abspath(__file__))
        workers = len(client.scheduler_info()["workers"])
        n = args.dask_shards or max(2 * max(workers, 1), math.ceil(len(everything) / 50))
        n = min(n, len(everything))
        models = [os.path.abspath(m) for m in args.model]
        futures = {}
        for k in range(1, n + 1):
            samples = select(everything, shard=(k, n))
            f = client.submit(task_module.evaluate_shard, trit_eval, models, samples, args.threads,
                              args.dynamic_exponents, pure=False, retries=2)
            futures[f] = (k, len(samples))
        parts, failures, images = [], [], 0
        start = time.monotonic()
        for f in as_completed(futures):
            k, count = futures[f]
            try:
                part = f.result()
            except Exception as e:  # noqa: BLE001 (a shard lost more workers than allowed, say)
                part = {"error": f"{type(e).__name__}: {e}"}
            if "error" in part:
                failures.append(f"shard {k}/{n}: {part['error']}")
            else:
                parts.append(describe(part, args, (k, n)))
                images += count
            done = len(parts) + len(failures)
            rate = images / max(time.monotonic() - start, 1e-9)
            bar = 30 * done // n
            print(f"\r[{'#' * bar}{' ' * (30 - bar)}] {done}/{n} shards  {images}/{len(everything)} images  "
                  f"{rate:.1f} images/s  ", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    if failures:
        for line in failures:
            print(f"eval_imagenet: {line}", file=sys.stderr)
        raise EvalError(f"{len(failures)} of {n} shards failed; no result was written")
    result = combine(parts, [f"shard {p['shard']['k']}/{n}" for p in parts])
    result["seconds"] = time.monotonic() - start
    show(result, args.json)


def evaluate_shard(trit_eval, models, samples, threads, dynamic):
    """A Dask task: one shard's result, or {"error": message} when it cannot be evaluated (not
    raised: the scheduler would run it again, to fail the same way)."""
    try:
        return evaluate(trit_eval, models, samples, threads, dynamic, quiet=True)
    except EvalError as e:
        return {"error": str(e)}


def combine(parts, names):
    """The shards' results as one run's (images back in their order), after checking that they
    are shards of one evaluation, each once; names: how errors call each part."""
    first = parts[0]
    keys = [m["model"] for m in first["models"]]
    n = first["shard"]["n"]
    seen = set()
    for name, part in zip(names, parts):
        if [m["model"] for m in part["models"]] != keys:
            raise EvalError(f"cannot merge '{name}': its models differ from '{names[0]}'")
        if (part["data"], part["labels"], part["skip"], part["limit"]) != \
                (first["data"], first["labels"], first["skip"], first["limit"]):
            raise EvalError(f"cannot merge '{name}': it evaluated other images than '{names[0]}'")
        if part["shard"]["n"] != n:
            raise EvalError(f"cannot merge '{name}': shard of {part['shard']['n']}, not {n}")
        if part["shard"]["k"] in seen:
            raise EvalError(f"cannot merge '{name}': shard {part['shard']['k']}/{n} appears twice")
        seen.add(part["shard"]["k"])
    if len(seen) != n:
        missing = sorted(set(range(1, n + 1)) - seen)
        print(f"merge: warning: shards {missing} of {n} are missing; the totals cover the others", file=sys.stderr)
    # Shard k holds images k-1, k-1+n, ...: interleave them back into the original order.
    ordered = sorted(parts, key=lambda part: part["shard"]["k"])
    per_image = []
    for i in range(max(len(part["per_image"]) for part in ordered)):
        per_image += [part["per_image"][i] for part in ordered if i < len(part["per_image"])]
    return dict(first, per_image=per_image, images=len(per_image), seconds=max(p["seconds"] for p in parts),
                shard={"k": sorted(seen), "n": n}, models=first["models"])


def merge(paths, json_out):
    parts = []
    for p in paths:
        try:
            with open(p, encoding="utf-8") as f:
                parts.append(json.load(f))
        except (OSError, ValueError) as e:
            raise EvalError(f"cannot read shard result '{p}': {e}") from None
    show(combine(parts, paths), json_out)


def main(argv):
    if argv[:1] == ["merge"]:
        p = argparse.ArgumentParser(prog="eval_imagenet.py merge", description="combine --shard results")
        p.add_argument("results", nargs="+", help="the --json files of the shards")
        p.add_argument("--json", help="write the combined result here")
        a = p.parse_args(argv[1:])
        merge(a.results, a.json)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="layouts and ground-truth formats: see the top of this script")
    p.add_argument("--model", "-m", action="append", required=True, help="a .trit model (repeat to compare; first = reference)")
    p.add_argument("--data", required=True, help="the dataset folder")
    p.add_argument("--labels", help="ground-truth file for a flat folder of validation images")
    p.add_argument("--meta", help="the devkit's meta.mat (for ILSVRC2012_validation_ground_truth.txt)")
    p.add_argument("--skip", type=int, default=0, help="leave out the first N images")
    p.add_argument("--limit", type=int, default=0, help="evaluate at most N images (after --skip)")
    p.add_argument("--shard", default="1/1", help="K/N: every N-th image from the K-th (K = 1..N)")
    p.add_argument("--threads", "-t", type=int, default=0, help="threads (default: all cores)")
    p.add_argument("--json", help="write totals, configuration and every image's prediction here")
    p.add_argument("--dynamic-exponents", action="store_true",
                   help="integer models: each activation's exponent chosen per image from its own values")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run the shards as tasks on this Dask scheduler (tcp://host:8786); paths must be shared")
    p.add_argument("--dask-shards", type=int, default=0,
                   help="shards for --dask (default: twice the workers, or one per 50 images if more)")
    p.add_argument("--trit-eval", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.skip < 0 or a.limit < 0 or a.threads < 0 or a.dask_shards < 0:
        raise EvalError("--skip, --limit, --threads and --dask-shards must not be negative")
    run(a)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except EvalError as e:
        print(f"eval_imagenet: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
