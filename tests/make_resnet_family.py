#!/usr/bin/python3
"""Writes ResNet-18 and ResNet-101 in torchvision's layout, with seeded random weights, as ONNX,
plus an input batch and the logits of this script's own numpy forward pass (float64).

Usage: make_resnet_family.py OUTDIR
Writes OUTDIR/resnet{18,101}.onnx, .input.bin (float32 [2, 3, 64, 64]) and .logits.bin
(float32 [2, 1000]). ResNet-18 uses basic blocks; ResNet-101 bottlenecks with the stride in the
3x3 convolution (torchvision's "v1.5"). Every convolution is followed by a BatchNormalization
node, so the converter's folding is exercised. Uses Debian's python3-numpy and python3-onnx.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 64
BATCH = 2
CLASSES = 1000


class Builder:
    def __init__(self, rng):
        self.rng = rng
        self.nodes, self.inits = [], []
        self.count = 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))

    # Each op returns (onnx tensor name, numpy value) and records the node.
    def conv_bn(self, x, out_c, k, stride, pad, relu, last_gamma=1.0):
        name, value = x
        in_c = value.shape[1]
        n = self.name("conv")
        w = self.rng.normal(0, np.sqrt(2.0 / (in_c * k * k)), (out_c, in_c, k, k)).astype(np.float32)
        self.init(n + ".w", w)
        self.nodes.append(helper.make_node("Conv", [name, n + ".w"], [n], name=n, kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[pad] * 4))
        y = conv(value, w.astype(np.float64), stride, pad)
        gamma = (self.rng.uniform(0.5, 1.0, out_c) * last_gamma).astype(np.float32)
        beta = self.rng.normal(0, 0.1, out_c).astype(np.float32)
        mean = self.rng.normal(0, 0.1, out_c).astype(np.float32)
        var = self.rng.uniform(0.5, 1.5, out_c).astype(np.float32)
        b = n + ".bn"
        for part, arr in (("g", gamma), ("b", beta), ("m", mean), ("v", var)):
            self.init(f"{b}.{part}", arr)
        self.nodes.append(helper.make_node("BatchNormalization", [n, b + ".g", b + ".b", b + ".m", b + ".v"],
                                           [b], name=b, epsilon=1e-5))
        s = (gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + 1e-5))[None, :, None, None]
        y = (y - mean.astype(np.float64)[None, :, None, None]) * s + beta.astype(np.float64)[None, :, None, None]
        out = (b, y)
        return self.relu(out) if relu else out

    def relu(self, x):
        n = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [x[0]], [n], name=n))
        return n, np.maximum(x[1], 0)

    def add_relu(self, a, b):
        n = self.name("add")
        self.nodes.append(helper.make_node("Add", [a[0], b[0]], [n], name=n))
        return self.relu((n, a[1] + b[1]))

    def maxpool(self, x):
        n = self.name("pool")
        self.nodes.append(helper.make_node("MaxPool", [x[0]], [n], name=n, kernel_shape=[3, 3], strides=[2, 2],
                                           pads=[1, 1, 1, 1]))
        v = np.pad(x[1], ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
        h = (v.shape[2] - 3) // 2 + 1
        w = (v.shape[3] - 3) // 2 + 1
        out = np.full((v.shape[0], v.shape[1], h, w), -np.inf)
        for ky in range(3):
            for kx in range(3):
                out = np.maximum(out, v[:, :, ky:ky + 2 * h:2, kx:kx + 2 * w:2])
        return n, out

    def head(self, x, rng):
        g = self.name("gap")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x[0]], [g], name=g))
        f = self.name("flatten")
        self.nodes.append(helper.make_node("Flatten", [g], [f], name=f, axis=1))
        k = x[1].shape[1]
        w = rng.normal(0, np.sqrt(1.0 / k), (CLASSES, k)).astype(np.float32)
        b = rng.normal(0, 0.1, CLASSES).astype(np.float32)
        self.init("fc.w", w)
        self.init("fc.b", b)
        self.nodes.append(helper.make_node("Gemm", [f, "fc.w", "fc.b"], ["logits"], name="fc", transB=1))
        pooled = x[1].mean(axis=(2, 3))
        return pooled @ w.astype(np.float64).T + b.astype(np.float64)


def conv(x, w, stride, pad):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - k) // stride + 1
    ow = (wd + 2 * pad - k) // stride + 1
    cols = np.empty((n, c, k, k, oh, ow))
    for ky in range(k):
        for kx in range(k):
            cols[:, :, ky, kx] = xp[:, :, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
    return np.einsum("nckyhw,ocky->nohw", cols.reshape(n, c, k, k, oh, ow), w.reshape(o, c, k, k), optimize=True)


def build(depth, rng):
    blocks, bottleneck = {18: ([2, 2, 2, 2], False), 101: ([3, 4, 23, 3], True)}[depth]
    bld = Builder(rng)
    x_in = rng.uniform(-2, 2, (BATCH, 3, SIZE, SIZE)).astype(np.float32)
    x = ("input", x_in.astype(np.float64))
    x = bld.conv_bn(x, 64, 7, 2, 3, True)
    x = bld.maxpool(x)
    in_c = 64
    for stage, count in enumerate(blocks):
        width = 64 * 2 ** stage
        out_c = width * 4 if bottleneck else width
        for i in range(count):
            stride = 2 if stage > 0 and i == 0 else 1
            if bottleneck:
                y = bld.conv_bn(x, width, 1, 1, 0, True)
                y = bld.conv_bn(y, width, 3, stride, 1, True)
                y = bld.conv_bn(y, out_c, 1, 1, 0, False, last_gamma=0.3)
            else:
                y = bld.conv_bn(x, width, 3, stride, 1, True)
                y = bld.conv_bn(y, out_c, 3, 1, 1, False, last_gamma=0.3)
            short = bld.conv_bn(x, out_c, 1, stride, 0, False) if (stride != 1 or in_c != out_c) else x
            x = bld.add_relu(y, short)
            in_c = out_c
    logits = bld.head(x, rng)
    graph = helper.make_graph(bld.nodes, f"resnet{depth}",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
                              bld.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model, x_in, logits.astype(np.float32)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for depth in (18, 101):
        model, x, logits = build(depth, np.random.default_rng(depth))
        onnx.save(model, os.path.join(out, f"resnet{depth}.onnx"))
        x.tofile(os.path.join(out, f"resnet{depth}.input.bin"))
        logits.tofile(os.path.join(out, f"resnet{depth}.logits.bin"))
        print(f"resnet{depth}: {len(model.graph.node)} nodes, logits std {logits.std():.3f}")


if __name__ == "__main__":
    main()
