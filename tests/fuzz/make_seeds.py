#!/usr/bin/python3
"""Makes the fuzzers' seed corpora in OUT/{onnx,image,model}/: a tiny ResNet-shaped ONNX graph,
tiny images in several formats, and that graph converted by trit-convert to float32, int8, int4
and ternary models. Generated at test time (ctest's make_fuzz_seeds, scripts/fuzz.sh), never
committed; tests/fuzz/<target>/ holds only the inputs fuzzing found.

  /usr/bin/python3 tests/fuzz/make_seeds.py build/bin/trit-convert OUT

With "-" for trit-convert (a build without the converter), no models are made.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
from PIL import Image


def tiny_onnx(path):
    rng = np.random.default_rng(7)
    inits, nodes = [], []

    def w(name, *shape):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name))
        return name

    nodes.append(helper.make_node("Conv", ["x", w("c1.w", 8, 3, 3, 3), w("c1.b", 8)], ["c1"], kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1], strides=[2, 2]))
    nodes.append(helper.make_node("BatchNormalization", ["c1", w("bn.s", 8), w("bn.b", 8), w("bn.m", 8), "bn.v"], ["b1"]))
    inits.append(numpy_helper.from_array(np.abs(rng.standard_normal(8)).astype(np.float32) + 0.5, "bn.v"))
    nodes.append(helper.make_node("Relu", ["b1"], ["r1"]))
    nodes.append(helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Conv", ["p1", w("c2.w", 8, 8, 3, 3)], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Conv", ["p1", w("c3.w", 8, 8, 1, 1)], ["c3"], kernel_shape=[1, 1]))
    nodes.append(helper.make_node("Add", ["c2", "c3"], ["a"]))
    nodes.append(helper.make_node("Relu", ["a"], ["ra"]))
    nodes.append(helper.make_node("AveragePool", ["ra"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(helper.make_node("GlobalAveragePool", ["ap"], ["g"]))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"]))
    nodes.append(helper.make_node("Gemm", ["f", w("fc.w", 10, 8), w("fc.b", 10)], ["y"], transB=1))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main(convert, out):
    for d in ("onnx", "image", "model"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    onnx_path = os.path.join(out, "onnx", "tiny.onnx")
    tiny_onnx(onnx_path)
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (13, 19, 3), dtype=np.uint8)
    for fmt, ext, mode in [("PNG", "png", "RGB"), ("JPEG", "jpg", "RGB"), ("BMP", "bmp", "RGB"), ("PNG", "gray.png", "L"),
                           ("PNG", "rgba.png", "RGBA"), ("GIF", "gif", "P"), ("PPM", "ppm", "RGB")]:
        Image.fromarray(pixels).convert(mode).save(os.path.join(out, "image", f"tiny.{ext}"), fmt)
    if convert == "-":
        return
    with tempfile.TemporaryDirectory() as calib:
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(os.path.join(calib, f"{i}.png"))
        for name, args in [("float", []), ("int8", ["--weights", "int8"]), ("int4", ["--weights", "int4", "--cluster", "2"]),
                           ("ternary", ["--weights", "ternary", "--cluster", "4", "--cluster-shape", "channels"])]:
            model = os.path.join(out, "model", f"tiny-{name}.trit")
            extra = ["--calib", calib] if args else []
            subprocess.run([convert, onnx_path, "-o", model, "--force", "--preset", "raw", "--resize", "0"] + args + extra,
                           check=True, capture_output=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
