#!/usr/bin/python3
"""Tests of scripts/eval_imagenet.py, scripts/two_folds.py and scripts/plot_layer_report.py.

    /usr/bin/python3 tests/test_eval_scripts.py BIN_DIR

The ground-truth parsers run on hand-written files. The dataset layouts, --shard and merge, and
the comparison table run end to end (trit-convert, trit-eval) on a tiny 1000-class model and a
few photos of ../shared/data/imagenet-sample laid out in a temporary folder; two_folds.py runs
on the real ResNet-8 (../shared/data/resnet8-cifar10). Those tests are skipped when
../shared/data is absent.
"""
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import eval_imagenet as ev  # noqa: E402
import plot_layer_report  # noqa: E402

BIN = None
SAMPLE = os.path.join(ROOT, "..", "shared", "data", "imagenet-sample")


def synsets():
    with open(os.path.join(ROOT, "scripts", "imagenet_synsets.txt"), encoding="utf-8") as f:
        return f.read().split()


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class GroundTruth(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_file_label_pairs(self):
        p = os.path.join(self.tmp, "val.txt")
        write(p, "ILSVRC2012_val_00000001.JPEG 65\nval/ILSVRC2012_val_00000002.JPEG n01751748\n\n")
        kind, truth = ev.parse_ground_truth(p)
        self.assertEqual(kind, "pairs")
        self.assertEqual(truth, {"ILSVRC2012_val_00000001.JPEG": "65", "ILSVRC2012_val_00000002.JPEG": "n01751748"})

    def test_official_ids(self):
        p = os.path.join(self.tmp, "ILSVRC2012_validation_ground_truth.txt")
        write(p, "490\n361\n171\n")
        self.assertEqual(ev.parse_ground_truth(p), ("ids", [490, 361, 171]))

    def test_bad_files_name_the_line(self):
        cases = [("", "the file is empty"), ("a.JPEG 65\nb.JPEG\n", "line 2 is not 'FILE LABEL'"),
                 ("a.JPEG 65\na.JPEG 66\n", "line 2: 'a.JPEG' appears twice"),
                 ("a.JPEG cat\n", "'cat' is neither a class index nor a WordNet id"),
                 ("12\n1001\n", "line 2 is not an ILSVRC2012_ID"), ("12\nx\n", "line 2 is not an ILSVRC2012_ID")]
        for text, message in cases:
            p = os.path.join(self.tmp, "gt.txt")
            write(p, text)
            with self.assertRaises(ev.EvalError) as e:
                ev.parse_ground_truth(p)
            self.assertIn(message, str(e.exception))
            self.assertNotIn("\n", str(e.exception))
        with self.assertRaises(ev.EvalError) as e:
            ev.parse_ground_truth(os.path.join(self.tmp, "missing.txt"))
        self.assertIn("missing.txt", str(e.exception))

    def test_official_ids_through_meta_mat(self):
        try:
            import scipy.io
        except ImportError:
            self.skipTest("python3-scipy is absent")
        # A devkit-shaped meta.mat: ILSVRC2012_ID 1..1000 in an order other than sorted.
        wnids = [f"n{i:08d}" for i in range(1000)]
        order = np.random.default_rng(1).permutation(1000)
        synsets = np.zeros(1000, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O")])
        for sid, k in enumerate(order, 1):
            synsets[sid - 1] = (sid, wnids[k], "x")
        scipy.io.savemat(os.path.join(self.tmp, "meta.mat"), {"synsets": synsets})
        write(os.path.join(self.tmp, "ILSVRC2012_validation_ground_truth.txt"), "3\n1\n")
        data = os.path.join(self.tmp, "val")
        os.mkdir(data)
        for i in (1, 2):
            write(os.path.join(data, ev.val_name(i) + ".JPEG"), "")
        samples = ev.find_samples(data, os.path.join(self.tmp, "ILSVRC2012_validation_ground_truth.txt"))
        self.assertEqual([label for _, label in samples], [wnids[order[2]], wnids[order[0]]])
        os.remove(os.path.join(self.tmp, "meta.mat"))
        with self.assertRaises(ev.EvalError) as e:
            ev.find_samples(data, os.path.join(self.tmp, "ILSVRC2012_validation_ground_truth.txt"))
        self.assertIn("give the devkit's meta.mat with --meta", str(e.exception))

    def test_shards_cover_the_set_once(self):
        items = list(range(23))
        shards = [ev.select(items, 2, 0, (k, 4)) for k in range(1, 5)]
        self.assertEqual(sorted(sum(shards, [])), items[2:])
        for bad in ("0/4", "5/4", "4", "a/b", ""):
            with self.assertRaises(ev.EvalError):
                ev.parse_shard(bad)


def tiny_imagenet_onnx(path):
    """Conv 3->8 (stride 4) + ReLU + global average pool + Gemm to 1000 classes, random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    init = [numpy_helper.from_array((rng.standard_normal(s) * 0.5).astype(np.float32), n)
            for n, s in [("w1", (8, 3, 3, 3)), ("b1", (8,)), ("w2", (1000, 8)), ("b2", (1000,))]]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], kernel_shape=[3, 3], strides=[4, 4], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny1000", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000])], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        photos = sorted(os.listdir(SAMPLE))[:12]
        cls.wnids = [p.split("_")[0] for p in photos]
        # Layout 3: names that start with the WordNet id (links to the real photos).
        cls.named = os.path.join(cls.tmp, "named")
        os.mkdir(cls.named)
        for p in photos:
            os.symlink(os.path.join(SAMPLE, p), os.path.join(cls.named, p))
        # Layout 1: one folder per WordNet id.
        cls.folders = os.path.join(cls.tmp, "folders")
        for p, w in zip(photos, cls.wnids):
            os.makedirs(os.path.join(cls.folders, w), exist_ok=True)
            os.symlink(os.path.join(SAMPLE, p), os.path.join(cls.folders, w, p))
        # Layout 2: a flat folder of validation-style names plus "FILE INDEX" lines.
        order = synsets()
        cls.flat = os.path.join(cls.tmp, "flat")
        os.mkdir(cls.flat)
        lines = []
        for i, (p, w) in enumerate(zip(photos, cls.wnids), 1):
            os.symlink(os.path.join(SAMPLE, p), os.path.join(cls.flat, ev.val_name(i) + ".JPEG"))
            lines.append(f"{ev.val_name(i)}.JPEG {order.index(w)}")
        cls.gt = os.path.join(cls.tmp, "val.txt")
        write(cls.gt, "\n".join(lines) + "\n")
        # Two models of the same tiny network: float32 and int8.
        onnx_path = os.path.join(cls.tmp, "tiny.onnx")
        tiny_imagenet_onnx(onnx_path)
        labels = os.path.join(ROOT, "scripts", "imagenet_synsets.txt")
        cls.float_model = os.path.join(cls.tmp, "tiny-float.trit")
        cls.int8_model = os.path.join(cls.tmp, "tiny-int8.trit")
        cls.report = os.path.join(cls.tmp, "int8.json")
        common = [onnx_path, "--preset", "torchvision", "--resize", "36", "--labels", labels]
        subprocess.run([os.path.join(BIN, "trit-convert")] + common + ["-o", cls.float_model], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run([os.path.join(BIN, "trit-convert")] + common +
                       ["-o", cls.int8_model, "--weights", "int8", "--calib", cls.named, "--calib-count", "4",
                        "--report", cls.report], check=True, stderr=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def evaluate(self, *args):
        out = os.path.join(self.tmp, f"result{len(os.listdir(self.tmp))}.json")
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            ev.main(["--trit-eval", os.path.join(BIN, "trit-eval"), "-m", self.float_model, "-m", self.int8_model,
                     "--threads", "2", "--json", out] + list(args))
        with open(out) as f:
            return json.load(f), stdout.getvalue()

    def test_layouts_give_the_same_labels_and_predictions(self):
        named, _ = self.evaluate("--data", self.named)
        folders, _ = self.evaluate("--data", self.folders)
        flat, _ = self.evaluate("--data", self.flat, "--labels", self.gt)
        self.assertEqual(named["images"], 12)
        for r in (named, folders, flat):
            self.assertEqual([i["truth"] for i in r["per_image"]], [i["truth"] for i in named["per_image"]])
            self.assertEqual([i["top5"] for i in r["per_image"]], [i["top5"] for i in named["per_image"]])
        order = synsets()
        self.assertEqual([i["truth"][0] for i in named["per_image"]], [order.index(w) for w in self.wnids])

    def test_shards_merge_to_one_run(self):
        whole, _ = self.evaluate("--data", self.named, "--skip", "1", "--limit", "10")
        parts = []
        for k in (1, 2, 3):
            part, _ = self.evaluate("--data", self.named, "--skip", "1", "--limit", "10", "--shard", f"{k}/3")
            self.assertEqual(part["images"], len(range(k - 1, 10, 3)))
            path = os.path.join(self.tmp, f"shard{k}.json")
            with open(path, "w") as f:
                json.dump(part, f)
            parts.append(path)
        merged_path = os.path.join(self.tmp, "merged.json")
        with contextlib.redirect_stdout(io.StringIO()):
            ev.main(["merge"] + parts + ["--json", merged_path])
        with open(merged_path) as f:
            merged = json.load(f)
        self.assertEqual(merged["images"], 10)
        self.assertEqual([i["path"] for i in merged["per_image"]], [i["path"] for i in whole["per_image"]])
        for a, b in zip(merged["totals"], whole["totals"]):
            for key in ("correct1", "correct5", "agreement"):
                self.assertEqual(a[key], b[key])
        self.assertIsNone(merged["totals"][0]["logit_sqnr_db"])
        self.assertAlmostEqual(merged["totals"][1]["logit_sqnr_db"], whole["totals"][1]["logit_sqnr_db"], places=6)
        with self.assertRaises(ev.EvalError) as e:
            ev.main(["merge", parts[0], parts[0]])
        self.assertIn("appears twice", str(e.exception))

    def test_comparison_table(self):
        result, text = self.evaluate("--data", self.named)
        rows = [line for line in text.splitlines() if line.startswith("| tiny-")]
        self.assertEqual(len(rows), 2)
        self.assertIn("| tiny-float.trit | float32 x2 |", rows[0])
        self.assertIn("| tiny-int8.trit | int8 x2 |", rows[1])
        t = result["totals"]
        drop = f"{100 * (t[0]['top1'] - t[1]['top1']):+.2f}"
        self.assertEqual(rows[1].split(" | ")[4], drop)
        agree = sum(i["top5"][1][0] == i["top5"][0][0] for i in result["per_image"]) / 12
        self.assertAlmostEqual(t[1]["agreement"], agree)
        self.assertEqual(t[0]["agreement"], 1.0)
        # Logit SQNR: from the per-image sums trit-eval writes, in the table; none for the first
        # model (whose own distance from itself is 0).
        self.assertTrue(all(i["logit_error"][0] == 0 for i in result["per_image"]))
        self.assertIsNone(t[0]["logit_sqnr_db"])
        signal = sum(i["logit_signal"] for i in result["per_image"])
        noise = sum(i["logit_error"][1] for i in result["per_image"])
        self.assertAlmostEqual(t[1]["logit_sqnr_db"], 10 * math.log10(signal / noise), places=9)
        self.assertGreater(t[1]["logit_sqnr_db"], 10)  # int8 follows float closely
        self.assertEqual(rows[0].split(" | ")[6], "-")
        self.assertEqual(rows[1].split(" | ")[6], f"{t[1]['logit_sqnr_db']:.1f} dB")
        # Cross-entropy on the labels: each image's equals -log softmax(logits)[truth] from the
        # logits infer prints (the same runtime, exact floats), and the table gives the mean.
        for m, model in enumerate((self.float_model, self.int8_model)):
            for image in result["per_image"][:3]:
                out = subprocess.run([os.path.join(BIN, "infer"), "--model", model, "--json", "--logits", image["path"]],
                                     check=True, capture_output=True, text=True).stdout
                logits = np.array(json.loads(out)["logits"], dtype=np.float64)
                top = logits.max()
                expected = math.log(np.exp(logits - top).sum()) - (logits[image["truth"][m]] - top)
                self.assertAlmostEqual(image["nll"][m], expected, delta=1e-7 * max(1.0, expected))
            mean = sum(i["nll"][m] for i in result["per_image"]) / 12
            self.assertAlmostEqual(t[m]["cross_entropy"], mean, places=12)
            self.assertEqual(rows[m].split(" | ")[7], f"{mean:.3f}")

    def test_bad_inputs_are_one_line_errors(self):
        with self.assertRaises(ev.EvalError) as e:
            self.evaluate("--data", os.path.join(self.tmp, "nowhere"))
        self.assertIn("is not a folder", str(e.exception))
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "eval_imagenet.py"), "-m", self.float_model,
                            "--data", self.flat], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.strip().count("\n"), 0)
        self.assertIn("does not start with a WordNet id, and no --labels file was given", r.stderr)

    def test_layer_report_table_and_chart(self):
        report = plot_layer_report.load(self.report)
        self.assertEqual([layer["encoding"] for layer in report["layers"]], ["int8", "int8"])
        for layer in report["layers"]:
            self.assertGreater(layer["sqnr_db"], 10)  # int8 on a two-layer network
            self.assertLessEqual(layer["cosine"], 1.0)
            self.assertGreater(layer["cosine"], 0.9)
            self.assertGreaterEqual(layer["saturated"], 0.0)
        table = plot_layer_report.markdown(report)
        self.assertEqual(len(table.splitlines()), 2 + len(report["layers"]))
        png = os.path.join(self.tmp, "layers.png")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("python3-matplotlib is absent")
        with contextlib.redirect_stdout(io.StringIO()):
            plot_layer_report.main([self.report, "-o", png])
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")


def make_tiny_models(tmp, calib):
    """The tiny network as float32 and int8 (calibrated on 4 photos of calib): their paths."""
    onnx_path = os.path.join(tmp, "tiny.onnx")
    tiny_imagenet_onnx(onnx_path)
    common = [onnx_path, "--preset", "torchvision", "--resize", "36", "--labels",
              os.path.join(ROOT, "scripts", "imagenet_synsets.txt")]
    models = [os.path.join(tmp, "tiny-float.trit"), os.path.join(tmp, "tiny-int8.trit")]
    subprocess.run([os.path.join(BIN, "trit-convert")] + common + ["-o", models[0]], check=True, stderr=subprocess.DEVNULL)
    subprocess.run([os.path.join(BIN, "trit-convert")] + common + ["-o", models[1], "--weights", "int8", "--calib", calib,
                    "--calib-count", "4"], check=True, stderr=subprocess.DEVNULL)
    return models


class Dask(unittest.TestCase):
    """--dask on a LocalCluster of two worker processes on the loopback interface, over 60 photos
    of ../shared/data/imagenet-sample: the merged result equals one local run, image by image,
    also when a worker is killed during the run; an unreadable image fails the run, named."""

    @classmethod
    def setUpClass(cls):
        import logging
        from distributed import Client, LocalCluster
        cls.tmp = tempfile.mkdtemp()
        cls.named = os.path.join(cls.tmp, "named")
        os.mkdir(cls.named)
        for p in sorted(os.listdir(SAMPLE))[:60]:
            os.symlink(os.path.join(SAMPLE, p), os.path.join(cls.named, p))
        cls.models = make_tiny_models(cls.tmp, cls.named)
        cls.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.CRITICAL)
        cls.client = Client(cls.cluster)
        cls.local, _ = cls.evaluate(cls, "--data", cls.named)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.close()
        shutil.rmtree(cls.tmp)

    def evaluate(self, *args):
        out = os.path.join(self.tmp, f"result{len(os.listdir(self.tmp))}.json")
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            ev.main(["--trit-eval", os.path.join(BIN, "trit-eval"), "-m", self.models[0], "-m", self.models[1],
                     "--threads", "1", "--json", out] + list(args))
        with open(out) as f:
            return json.load(f), stdout.getvalue()

    def assert_same_as_local(self, result):
        self.assertEqual(result["images"], 60)
        keys = ("path", "truth", "top5", "logit_signal", "logit_error")
        self.assertEqual([[i[k] for k in keys] for i in result["per_image"]],
                         [[i[k] for k in keys] for i in self.local["per_image"]])
        for a, b in zip(result["totals"], self.local["totals"]):
            for key in ("correct1", "correct5", "agreement", "logit_sqnr_db"):
                self.assertEqual(a[key], b[key])

    def test_shards_on_the_cluster_merge_to_one_local_run(self):
        result, text = self.evaluate("--data", self.named, "--dask", self.cluster.scheduler_address, "--dask-shards", "7")
        self.assert_same_as_local(result)
        self.assertEqual(result["shard"], {"k": list(range(1, 8)), "n": 7})
        self.assertIn("| tiny-int8.trit |", text)

    def test_a_worker_killed_during_the_run(self):
        import signal
        import threading
        self.client.wait_for_workers(2)
        box = {}

        def run():
            try:
                box["result"], _ = self.evaluate("--data", self.named, "--dask", self.cluster.scheduler_address,
                                                 "--dask-shards", "30")
            except Exception as e:  # noqa: BLE001 (reported below)
                box["error"] = e

        thread = threading.Thread(target=run)
        thread.start()
        killed = None
        while thread.is_alive() and killed is None:
            busy = [addr for addr, keys in self.client.processing().items() if keys]
            if busy:
                pid = self.client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed = pid
            else:
                threading.Event().wait(0.005)
        thread.join()
        self.assertIsNotNone(killed, "the run ended before a worker could be killed")
        self.assertNotIn("error", box)
        self.assert_same_as_local(box["result"])
        self.client.wait_for_workers(2)  # the nanny starts it again
        self.assertNotIn(killed, self.client.run(os.getpid).values())

    def test_an_unreadable_image_fails_the_run_by_name(self):
        bad = os.path.join(self.tmp, "bad")
        os.mkdir(bad)
        for p in sorted(os.listdir(self.named))[:6]:
            os.symlink(os.path.join(self.named, p), os.path.join(bad, p))
        with open(os.path.join(SAMPLE, sorted(os.listdir(SAMPLE))[0]), "rb") as f:
            head = f.read(300)
        with open(os.path.join(bad, "n01440764_truncated.JPEG"), "wb") as f:
            f.write(head)
        stderr = io.StringIO()
        with self.assertRaises(ev.EvalError) as e, contextlib.redirect_stderr(stderr):
            self.evaluate("--data", bad, "--dask", self.cluster.scheduler_address, "--dask-shards", "3")
        self.assertIn("1 of 3 shards failed", str(e.exception))
        self.assertIn("cannot read image", stderr.getvalue())
        self.assertIn("n01440764_truncated.JPEG", stderr.getvalue())


R8 = os.path.join(ROOT, "..", "shared", "data", "resnet8-cifar10")


class TwoFolds(unittest.TestCase):
    """scripts/two_folds.py on the real ResNet-8 and its 1000 CIFAR-10 photos, int8 and ternary
    N=4: every figure of folds.json recounted from trit-eval's per-photo records and logits, the
    folds disjoint and covering the photos, each model's fitted temperature a minimum, the paired
    table's means and standard errors, and a rerun that converts nothing and gives the same
    figures."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.cmd = [sys.executable, os.path.join(ROOT, "scripts", "two_folds.py"), "--model", "resnet8", "--out",
                   cls.tmp, "--bin", BIN, "--config", "i8=--weights int8", "--config", "t4=--weights ternary --cluster 4"]
        cls.first = subprocess.run(cls.cmd, capture_output=True, text=True)
        with open(os.path.join(cls.tmp, "folds.json")) as f:
            cls.rows = json.load(f)
        cls.folds = []
        for fold in (1, 2):
            with open(os.path.join(cls.tmp, f"fold{fold}.json")) as f:
                cls.folds.append(json.load(f)["per_image"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def photos(self, name):
        with open(os.path.join(self.tmp, name)) as f:
            return [line.split("\t")[0] for line in f.read().splitlines()]

    def test_folds_split_the_photos(self):
        self.assertEqual(self.first.returncode, 0, self.first.stderr)
        everything = self.photos("photos.txt")
        scored = [self.photos("scored1.txt"), self.photos("scored2.txt")]
        self.assertEqual(len(everything), 1000)
        self.assertEqual(sorted(scored[0] + scored[1]), sorted(everything))
        self.assertFalse(set(scored[0]) & set(scored[1]))
        # Fold 1's models calibrate on --calib-shard 1/2 (photos 0, 2, ...): it scores the others.
        self.assertEqual(scored[0], everything[1::2])
        self.assertEqual([len(f) for f in self.folds], [500, 500])

    def test_pooled_figures_are_the_photos(self):
        records = self.folds[0] + self.folds[1]
        n = len(records)
        for c, row in enumerate(self.rows, start=1):
            correct = sum(r["top5"][c][0] == r["truth"][c] for r in records)
            self.assertEqual(row["images"], n)
            self.assertAlmostEqual(row["top1"], correct / n, places=12)
            self.assertAlmostEqual(row["drop"], (sum(r["top5"][0][0] == r["truth"][0] for r in records) - correct) / n,
                                   places=12)
            self.assertAlmostEqual(row["agreement"], sum(r["top5"][c][0] == r["top5"][0][0] for r in records) / n,
                                   places=12)
            self.assertAlmostEqual(row["cross_entropy"], sum(r["nll"][c] for r in records) / n, places=12)
            self.assertAlmostEqual(row["float_cross_entropy"], sum(r["nll"][0] for r in records) / n, places=12)
            signal = sum(r["logit_signal"] for r in records)
            self.assertAlmostEqual(row["sqnr_db"], 10 * math.log10(signal / sum(r["logit_error"][c] for r in records)),
                                   places=9)
            for fold in (1, 2):
                part = self.folds[fold - 1]
                self.assertAlmostEqual(row[f"fold{fold}_top1"],
                                       sum(r["top5"][c][0] == r["truth"][c] for r in part) / len(part), places=12)
        # int8 is near float32 and ternary N=4 below it: the rows are the configs in order.
        self.assertEqual([r["config"] for r in self.rows], ["i8", "t4"])
        self.assertGreater(self.rows[0]["sqnr_db"], self.rows[1]["sqnr_db"] + 10)

    def test_paired_changes_against_the_first_config(self):
        records = self.folds[0] + self.folds[1]
        against = self.rows[1]["against"]
        self.assertEqual(against["config"], "i8")
        for key, value in (("top1", lambda r, c: float(r["top5"][c][0] == r["truth"][c])),
                           ("cross_entropy", lambda r, c: r["nll"][c])):
            d = np.array([value(r, 2) - value(r, 1) for r in records])
            mean, se = against[key]
            self.assertAlmostEqual(mean, self.rows[1][key] - self.rows[0][key], places=9)
            self.assertAlmostEqual(mean, d.mean(), places=9)
            self.assertAlmostEqual(se, d.std(ddof=1) / math.sqrt(len(d)), places=9)
            self.assertGreater(se, 0)
        with open(os.path.join(self.tmp, "folds.md")) as f:
            md = f.read()
        self.assertIn(f"| t4 | {100 * against['top1'][0]:+.1f} ± {100 * against['top1'][1]:.1f} | "
                      f"{against['cross_entropy'][0]:+.3f} ± {against['cross_entropy'][1]:.3f} |", md)

    def test_cross_entropy_at_each_models_fitted_temperature(self):
        records = self.folds[0] + self.folds[1]
        fitted = {1: [], 2: [], 3: []}
        for fold in (1, 2):
            logits = np.load(os.path.join(self.tmp, f"fold{fold}-logits.npy")).astype(np.float64)
            part = self.folds[fold - 1]
            self.assertEqual(logits.shape, (500, 3, 10))
            for m in range(3):
                z = logits[:, m]
                truth = np.array([r["truth"][m] for r in part])

                def mean_nll(t):
                    y = z / t
                    top = y.max(axis=1)
                    return np.log(np.exp(y - top[:, None]).sum(axis=1)) + top - y[np.arange(len(truth)), truth]

                # The logits are the ones the records were scored with.
                np.testing.assert_allclose(mean_nll(1.0), [r["nll"][m] for r in part], atol=1e-6)
                if m > 0:
                    t = self.rows[m - 1][f"fold{fold}_temperature"]
                    # A minimum: nudging T either way, or leaving it at 1, does not lower the mean.
                    best = mean_nll(t).mean()
                    for other in (t * 1.01, t / 1.01, 1.0):
                        self.assertLessEqual(best, mean_nll(other).mean() + 1e-12)
                    fitted[m] += list(mean_nll(t))
        for c, row in enumerate(self.rows, start=1):
            self.assertAlmostEqual(row["cross_entropy_fitted"], sum(fitted[c]) / len(records), places=9)
            self.assertLessEqual(row["cross_entropy_fitted"], row["cross_entropy"])
        d = np.array(fitted[2]) - np.array(fitted[1])
        mean, se = self.rows[1]["against"]["cross_entropy_fitted"]
        self.assertAlmostEqual(mean, d.mean(), places=9)
        self.assertAlmostEqual(se, d.std(ddof=1) / math.sqrt(len(d)), places=9)

    def test_a_rerun_converts_nothing_and_gives_the_same_figures(self):
        again = subprocess.run(self.cmd, capture_output=True, text=True)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("converting", self.first.stderr)
        self.assertNotIn("converting", again.stderr)
        with open(os.path.join(self.tmp, "folds.json")) as f:
            self.assertEqual(json.load(f), self.rows)

    def test_logits_that_cannot_be_written_are_one_line_errors_and_no_file(self):
        eval_bin = os.path.join(BIN, "trit-eval")
        r8 = os.path.join(self.tmp, "float32.trit")
        scored = os.path.join(self.tmp, "scored1.txt")
        tiny = os.path.join(self.tmp, "tiny1000.trit")
        tiny_imagenet_onnx(os.path.join(self.tmp, "tiny1000.onnx"))
        subprocess.run([os.path.join(BIN, "trit-convert"), os.path.join(self.tmp, "tiny1000.onnx"), "-o", tiny,
                        "--preset", "raw"], check=True, stderr=subprocess.DEVNULL)
        out = os.path.join(self.tmp, "bad-logits.npy")
        broken = os.path.join(self.tmp, "broken.txt")  # a photo, then one that is not there
        write(broken, f"{self.photos('scored1.txt')[0]}\tcat\n{os.path.join(self.tmp, 'absent.png')}\tcat\n")
        unwritable = os.path.join(self.tmp, "absent-folder", "x.npy")
        cases = [([r8, tiny], scored, out, [f"'{r8}' has 10 classes", f"'{tiny}' 1000"]),
                 ([r8], scored, unwritable, ["cannot write", unwritable]),
                 ([r8], broken, out, ["absent.png"])]  # fails after the file was begun
        for models, images, path, words in cases:
            cmd = [eval_bin, "--list", images, "--json", os.path.join(self.tmp, "bad.json"), "--logits", path]
            for m in models:
                cmd += ["-m", m]
            run = subprocess.run(cmd, capture_output=True, text=True)
            self.assertNotEqual(run.returncode, 0)
            last = run.stderr.strip().splitlines()[-1]
            self.assertTrue(last.startswith("trit-eval: "), run.stderr)
            for w in words:
                self.assertIn(w, last)
            self.assertFalse(os.path.exists(path))

    def test_extra_calibration_photos_join_each_folds_half_and_are_never_scored(self):
        out = tempfile.mkdtemp()
        try:
            # 20 photos under other names (the scored ones themselves are refused, below).
            extra_dir = os.path.join(out, "extra")
            os.makedirs(extra_dir)
            airplanes = os.path.join(R8, "cifar10-test-1000", "airplane")
            for f in sorted(os.listdir(airplanes))[:20]:
                shutil.copy(os.path.join(airplanes, f), os.path.join(extra_dir, "x" + f))
            extra = sorted(os.path.join(extra_dir, f) for f in os.listdir(extra_dir))
            for f in ("float32.trit", "float32.log"):  # the float model is the same: not converted again
                shutil.copy(os.path.join(self.tmp, f), out)
            cmd = self.cmd[:5] + [out] + self.cmd[6:8] + ["--calib-extra", extra_dir, "--config", "i8=--weights int8"]
            run = subprocess.run(cmd, capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stderr)
            everything = self.photos("photos.txt")
            for fold in (1, 2):
                with open(os.path.join(out, f"calib{fold}.txt")) as f:
                    self.assertEqual(f.read().splitlines(), everything[fold - 1::2] + extra)
                with open(os.path.join(out, f"scored{fold}.txt")) as f:
                    self.assertEqual([line.split("\t")[0] for line in f.read().splitlines()], everything[2 - fold::2])
                with open(os.path.join(out, f"i8-f{fold}.log")) as f:
                    log = f.read()
                self.assertIn(f"calibrating on the list {os.path.join(out, f'calib{fold}.txt')}", log)
                self.assertIn("float network: 520/520 images", log)
            # A folder that is not there: one line, before anything is converted.
            absent = os.path.join(out, "absent")
            bad = subprocess.run(self.cmd[:5] + [os.path.join(out, "new")] + self.cmd[6:] + ["--calib-extra", absent],
                                 capture_output=True, text=True)
            self.assertNotEqual(bad.returncode, 0)
            self.assertEqual(bad.stderr.strip().splitlines(), [f"two_folds: --calib-extra '{absent}' is not a folder"])
            self.assertFalse(os.path.exists(os.path.join(out, "new")))
            # Photos that are scored: refused before any fold is converted.
            bad = subprocess.run(self.cmd[:5] + [out] + self.cmd[6:8] + ["--calib-extra", R8, "--config", "x=--weights int8"],
                                 capture_output=True, text=True)
            self.assertNotEqual(bad.returncode, 0)
            self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)
            self.assertIn("1000 of the photos that are scored", bad.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "x-f1.trit")))
        finally:
            shutil.rmtree(out)

    def test_a_bad_config_is_a_one_line_error(self):
        bad = subprocess.run(self.cmd[:-4] + ["--config", "no equals sign"], capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)
        self.assertIn("no equals sign", bad.stderr)


if __name__ == "__main__":
    # test_eval_scripts.py BIN [CLASS ...]: ctest runs GroundTruth, EndToEnd, Dask and TwoFolds as
    # four tests; the last three exit 77 (ctest: skipped) without ../shared/data.
    BIN = sys.argv.pop(1)
    if ({"EndToEnd", "Dask", "TwoFolds"} & set(sys.argv[1:])) and not (os.path.isdir(SAMPLE) and os.path.isdir(R8)):
        print("skipped: ../shared/data is absent")
        sys.exit(77)
    unittest.main(verbosity=2)
