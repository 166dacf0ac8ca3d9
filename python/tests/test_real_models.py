"""The Python package on the real CIFAR-10 ResNet-8 and its photos (../shared/data): trit.convert
to ternary N=4, then the same predictions and logits as `infer --json --logits`, and the
accuracy a ternary ResNet-8 keeps. Skips when ../shared/data is absent."""
import glob
import os

import numpy as np
import pytest

import trit
from conftest import SHARED
from test_module import infer_json

R8 = os.path.join(SHARED, "resnet8-cifar10")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

pytestmark = pytest.mark.skipif(not os.path.isdir(R8), reason=f"{R8} is absent (../shared/data)")


@pytest.fixture(scope="module")
def resnet8(tmp_path_factory):
    d = tmp_path_factory.mktemp("resnet8")
    photos = sorted(glob.glob(os.path.join(R8, "cifar10-test-1000", "*", "*.jpg")))
    calib, scored = photos[0::2], photos[1::2]  # calibrate on one half, score the other
    (d / "calib.txt").write_text("".join(p + "\n" for p in calib))
    (d / "labels.txt").write_text("".join(c + "\n" for c in CLASSES))
    report = trit.convert(os.path.join(R8, "resnet8.onnx"), d / "t4.trit", preset="raw", labels=d / "labels.txt",
                          weights="ternary", cluster=4, calib_list=d / "calib.txt", calib_count=100)
    trit.convert(os.path.join(R8, "resnet8.onnx"), d / "float.trit", preset="raw", labels=d / "labels.txt")
    return {"dir": d, "report": report, "scored": scored}


def test_convert_resnet8_to_ternary(resnet8):
    layers = resnet8["report"]["report"]["layers"]
    assert len(layers) == 10  # 9 convolutions and the fully connected layer
    assert [l["encoding"] for l in layers] == ["int8"] + ["ternary"] * 8 + ["int8"]
    assert len(resnet8["report"]["report"]["calibration_images"]) == 100
    assert resnet8["report"]["report"]["multiplications_replaced"] > 0.9


def test_the_same_answers_as_infer(resnet8):
    model = trit.Model.load(resnet8["dir"] / "t4.trit")
    photos = resnet8["scored"][::25]  # 20 photos, two of each class
    want = infer_json(str(resnet8["dir"] / "t4.trit"), photos)
    s = model.session()
    batch = np.stack([trit.fit_to_input(p, model) for p in photos])
    logits = s.logits(batch)
    for i, p in enumerate(photos):
        top, l = want[p]
        assert np.array_equal(logits[i], l), p
        assert [g.label for g in s.classify(p)] == [t["label"] for t in top]


def test_ternary_resnet8_keeps_most_of_float_accuracy(resnet8):
    scored = resnet8["scored"]
    truth = np.array([CLASSES.index(os.path.basename(os.path.dirname(p))) for p in scored])
    top1 = {}
    for name in ("float", "t4"):
        model = trit.Model.load(resnet8["dir"] / f"{name}.trit")
        batch = np.stack([trit.fit_to_input(p, model) for p in scored])
        top1[name] = float(np.mean(model.session(max_batch=16).logits(batch).argmax(axis=1) == truth))
    # float32 scores about 75 % on these 500 photos and two-fold ternary N=4 about 69 %
    # (README); chance is 10 %.
    assert top1["float"] > 0.70
    assert top1["t4"] > top1["float"] - 0.12, top1
