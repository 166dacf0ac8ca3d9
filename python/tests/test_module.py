"""The Python package on the fixtures' ResNet-18: the same numbers as the C++ tools, threads,
and errors. Needs no ../shared."""
import json
import os
import subprocess
import threading
import time

import numpy as np
import pytest
from PIL import Image

import trit
from conftest import BIN


def infer_json(model, photos):
    """infer --json --logits on the photos: {path: (top classes, logits as float32)}."""
    out = subprocess.run([os.path.join(BIN, "infer"), "--model", model, "--top", "5", "--json", "--logits", *photos],
                         check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    return {r["image"]: (r["top"], np.array(r["logits"], dtype=np.float32)) for r in rows}


def test_convert_reports_each_layer_and_shows_progress(family):
    int8 = family["reports"]["int8"]["report"]
    assert family["reports"]["float"]["report"] is None
    assert family["reports"]["int8"]["nodes"] > 20 and family["reports"]["int8"]["batch_norms_folded"] == 20
    layers = int8["layers"]
    assert len(layers) == 21  # 20 convolutions and the fully connected layer
    assert all(l["encoding"] == "int8" for l in layers)
    assert int8["multiplications_replaced"] == 0
    assert sorted(int8["calibration_images"]) == ["c0.png", "c1.png", "c2.png", "c3.png"]
    stages = [e[0] for e in family["events"]]
    assert "note" in stages and "float" in stages
    layer_events = [e for e in family["events"] if e[0] == "layer"]
    assert [e[1] for e in layer_events] == list(range(1, 22)) and all(e[2] == 21 for e in layer_events)
    assert layer_events[0][3].startswith("[ 1/21] ")


def test_predictions_and_logits_equal_infer_bit_for_bit(family):
    for kind in ("float", "int8"):
        model = trit.Model.load(family[kind])
        want = infer_json(family[kind], family["photos"])
        with model.session(max_batch=4) as s:
            batch = np.stack([trit.fit_to_input(p, model) for p in family["photos"]])
            assert batch.shape == (6, 64, 64, 3) and batch.dtype == np.uint8
            logits = s.logits(batch)  # 6 images, run 4 and 2
            assert logits.shape == (6, 1000) and logits.dtype == np.float32
            for i, p in enumerate(family["photos"]):
                top, l = want[p]
                assert np.array_equal(logits[i], l), (kind, p)
                got = s.classify(p, k=5)
                assert [g.index for g in got] == [t["class"] for t in top]
                assert [g.wnid for g in got] == [t["wnid"] for t in top]
                assert [g.label for g in got] == [t["label"] for t in top]
                assert [round(g.probability, 6) for g in got] == pytest.approx([t["prob"] for t in top], abs=1e-6)


def test_every_form_of_an_image_gives_the_same_answer(family):
    model = trit.Model.load(family["int8"])
    s = model.session()
    p = family["photos"][2]
    want = s.classify(p)
    pixels = trit.decode_image(p)
    assert np.array_equal(pixels, np.asarray(Image.open(p).convert("RGB")))  # PNG: lossless
    assert s.classify(pixels) == want
    assert s.classify(Image.open(p)) == want
    assert s.classify(open(p, "rb").read()) == want
    assert s.classify(np.asfortranarray(pixels)) == want  # any layout
    import pathlib
    assert s.classify(pathlib.Path(p)) == want


def test_a_batch_in_any_layout_and_a_float_tensor_give_the_same_logits(family):
    model = trit.Model.load(family["float"])
    s = model.session(max_batch=2)
    batch = np.stack([trit.fit_to_input(p, model) for p in family["photos"]])
    want = s.logits(batch)
    assert np.array_equal(s.logits(batch[::-1].copy())[::-1], want)
    assert np.array_equal(s.logits(batch[::-1])[::-1], want)  # negative strides: copied once
    # The normalization the model's metadata asks for, in float32 as the runtime computes it.
    md = model.metadata
    x = (batch.astype(np.float32) - np.float32(md["mean"])) / np.float32(md["scale"])
    tensor = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    assert np.array_equal(s.logits(tensor), want)
    # One image at a time equals the batch.
    for i in range(len(batch)):
        assert np.array_equal(s.logits(batch[i:i + 1])[0], want[i])


def test_runs_release_the_gil_and_two_threads_run_at_once(family):
    model = trit.Model.load(family["int8"])
    batch = np.stack([trit.fit_to_input(p, model) for p in family["photos"]] * 4)
    want = model.session().logits(batch)

    # While one thread runs, pure Python code in another keeps running.
    ticks = [0]
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks[0] += 1

    ticker = threading.Thread(target=tick)
    s = model.session()
    ticker.start()
    time.sleep(0.01)
    before = ticks[0]
    start = time.perf_counter()
    runs = 0
    while runs < 3 or time.perf_counter() - start < 0.1:  # enough time in runs for the ticks to mean something
        s.logits(batch)
        runs += 1
    elapsed = time.perf_counter() - start
    after = ticks[0]
    done.set()
    ticker.join()
    assert elapsed > 0.05 and after - before > 1000, (elapsed, after - before)

    # Two threads, a session each, at once; and two threads sharing one session (they take turns).
    results, errors = {}, []
    shared = model.session()

    def run(name, session):
        try:
            for _ in range(3):
                results.setdefault(name, []).append(session.logits(batch))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(f"own{i}", model.session())) for i in range(2)]
    threads += [threading.Thread(target=run, args=(f"shared{i}", shared)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4
    for runs in results.values():
        assert len(runs) == 3 and all(np.array_equal(r, want) for r in runs)


def test_errors_are_exceptions_with_one_line(family, tmp_path):
    with pytest.raises(trit.Error, match="cannot load model '.*missing.trit'"):
        trit.Model.load(tmp_path / "missing.trit")
    bad = tmp_path / "corrupt.trit"
    data = bytearray(open(family["int8"], "rb").read())
    data[100:4000] = os.urandom(3900)
    bad.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(trit.Error, match="cannot load model"):
        trit.Model.load(bad)
    assert issubclass(trit.Error, RuntimeError)
    with pytest.raises(TypeError):
        trit.Model.load(42)
    model = trit.Model.load(family["int8"])
    s = model.session()
    with pytest.raises(ValueError, match="Nx64x64x3"):
        s.logits(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError):
        s.logits(np.zeros((64, 64, 3), np.uint8))  # one image without its batch axis
    with pytest.raises(TypeError, match="float64"):
        s.logits(np.zeros((1, 64, 64, 3), np.float64))
    with pytest.raises(TypeError):
        s.logits([[1, 2, 3]])
    with pytest.raises(TypeError, match="int16"):
        s.classify(np.zeros((10, 10, 3), np.int16))
    with pytest.raises(ValueError, match="HxWx3"):
        s.classify(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        s.classify(family["photos"][0], k=0)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(family["photos"][0], "rb").read()[:200])
    with pytest.raises(trit.Error, match="truncated.png"):
        s.classify(truncated)
    with pytest.raises(trit.Error, match="nothing.png"):
        s.classify(tmp_path / "nothing.png")
    with pytest.raises(trit.Error, match="memory limit"):
        trit.Model.load(family["int8"], memory_limit=1000)
    with pytest.raises(ValueError):
        model.session(max_batch=0)


def test_closed_models_and_sessions_raise_and_never_crash(family):
    model = trit.Model.load(family["int8"])
    s = model.session()
    x = np.stack([trit.fit_to_input(family["photos"][0], model)])
    want = s.logits(x)
    model.close()
    assert model.closed and "closed" in repr(model)
    assert np.array_equal(s.logits(x), want)  # a session keeps its model alive
    with pytest.raises(trit.Error, match="closed"):
        model.session()
    with pytest.raises(trit.Error, match="closed"):
        model.classes
    s.close()
    s.close()  # twice is fine
    with pytest.raises(trit.Error, match="closed"):
        s.logits(x)
    with pytest.raises(trit.Error, match="closed"):
        s.classify(family["photos"][0])
    with trit.Model.load(family["float"]) as m, m.session() as s2:
        assert s2.logits(x.copy()).shape == (1, 1000)
    assert m.closed and s2.closed


def test_convert_errors_write_no_file(family, tmp_path):
    out = tmp_path / "x.trit"
    with pytest.raises(ValueError, match="weights"):
        trit.convert(family["onnx"], out, weights="bogus")
    with pytest.raises(trit.Error, match="--reconstruct"):
        trit.convert(family["onnx"], out, reconstruct=True)
    with pytest.raises(trit.Error, match="missing.onnx"):
        trit.convert(tmp_path / "missing.onnx", out)
    assert not out.exists()
    # An existing file is kept unless force=True.
    out.write_bytes(b"mine")
    with pytest.raises(trit.Error, match="exists"):
        trit.convert(family["onnx"], out, preset="torchvision")
    assert out.read_bytes() == b"mine"
    trit.convert(family["onnx"], out, preset="torchvision", force=True)
    assert trit.Model.load(out).classes == 1000
    # An exception in the progress callable stops the conversion and comes back as itself.
    out2 = tmp_path / "stopped.trit"

    class Stop(Exception):
        pass

    def stop(stage, done, total, line):
        if stage == "layer" and done == 3:
            raise Stop(line)

    with pytest.raises(Stop, match=r"\[ 3/21\]"):
        trit.convert(family["onnx"], out2, preset="torchvision", weights="int8", calib=family["dir"] / "calib",
                     method="rtn", progress=stop)
    assert not out2.exists()
    with pytest.raises(TypeError):
        trit.convert(family["onnx"], out2, progress="yes")


def test_convert_with_a_progress_bar(family, tmp_path, capfd):
    report = trit.convert(family["onnx"], tmp_path / "t.trit", preset="torchvision", weights="ternary", cluster=4,
                          shape="channels", calib=family["dir"] / "calib", method="rtn", progress=True)
    err = capfd.readouterr().err
    assert "layers" in err and "21/21" in err and "float network" in err
    layers = report["report"]["layers"]
    assert layers[0]["encoding"] == "int8" and layers[-1]["encoding"] == "int8"  # first and last kept
    assert all(l["encoding"] == "ternary" and l["cluster"] == 4 and l["cluster_shape"] == "channels" for l in layers[1:-1])
    assert report["report"]["multiplications_replaced"] > 0.5


def test_the_sample_runs(family):
    sample = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "python", "classify.py")
    r = subprocess.run(["/usr/bin/python3", sample, family["int8"], *family["photos"][:2]], capture_output=True, text=True,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert "batch top-1" in r.stdout and family["photos"][0] in r.stdout
    r = subprocess.run(["/usr/bin/python3", sample, "missing.trit", family["photos"][0]], capture_output=True, text=True)
    assert r.returncode != 0 and "cannot load model 'missing.trit'" in r.stderr
