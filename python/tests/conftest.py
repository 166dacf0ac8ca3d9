"""Fixtures of the Python package's tests, which ctest runs (python/CMakeLists.txt) with
PYTHONPATH at the build tree's package and these variables:
    TRIT_BIN       the build's bin/ (infer, for the comparisons)
    TRIT_TESTDATA  the fixtures' data (family/resnet18.onnx: a seeded 64x64 ResNet-18)
    TRIT_SHARED    ../shared/data (the real photos and ResNet-8); tests that need it skip
A run in which any test skipped exits 77, which ctest reports as skipped, never as passed."""
import os

import numpy as np
import pytest
from PIL import Image

import trit

BIN = os.environ.get("TRIT_BIN", "")
TESTDATA = os.environ.get("TRIT_TESTDATA", "")
SHARED = os.environ.get("TRIT_SHARED", "")


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus == 0 and reporter is not None and reporter.stats.get("skipped"):
        session.exitstatus = 77


@pytest.fixture(scope="session")
def family(tmp_path_factory):
    """ResNet-18 (seeded, 64x64, 1000 classes) converted with trit.convert to float32 and int8
    (round to nearest: quick), calibrated on seeded noise photos; photos of other sizes to classify; the labels."""
    onnx = os.path.join(TESTDATA, "family", "resnet18.onnx")
    if not os.path.exists(onnx):
        pytest.fail(f"the fixture {onnx} is missing (ctest's make_resnet_family makes it)")
    d = tmp_path_factory.mktemp("family")
    rng = np.random.default_rng(1)
    (d / "calib").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (72 + 5 * i, 80, 3), dtype=np.uint8)).save(d / "calib" / f"c{i}.png")
    photos = []
    for i in range(6):
        p = d / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (64 + 7 * i, 90 - 3 * i, 3), dtype=np.uint8)).save(p)
        photos.append(str(p))
    labels = d / "labels.txt"
    labels.write_text("".join(f"n{c:08d} class {c}\n" for c in range(1000)))
    events = []
    reports = {}
    for weights in ("float", "int8"):
        reports[weights] = trit.convert(onnx, d / f"{weights}.trit", preset="torchvision", resize=72, labels=labels,
                                        weights=weights, calib=d / "calib" if weights != "float" else None,
                                        method="rtn" if weights != "float" else None,
                                        progress=lambda *e: events.append(e))
    return {"dir": d, "onnx": onnx, "photos": photos, "events": events, "reports": reports,
            "float": str(d / "float.trit"), "int8": str(d / "int8.trit")}
