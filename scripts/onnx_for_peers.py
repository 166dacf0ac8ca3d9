#!/usr/bin/python3
"""The float ONNX graph peers are timed on: the same network trit runs, in the form an int8 peer
can fuse.

  /usr/bin/python3 scripts/onnx_for_peers.py IN.onnx OUT.onnx     (Debian: python3-onnx, python3-numpy)

- BatchNormalization after a Conv is folded into the Conv's weights and bias, as trit-convert
  folds it (left in, it sits between the Conv and its quantizer and ONNX Runtime cannot fuse
  the QDQ pattern into QLinearConv).
- Gemm weights become [out, in] with transB=1, the layout ../shared/bench/make-qdq.py reads.
Refuses to overwrite OUT.
"""
import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def main(src, dst):
    if os.path.exists(dst):
        sys.exit(f"onnx_for_peers: '{dst}' exists; remove it first")
    model = onnx.load(src)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    readers = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    drop = []
    for bn in [n for n in g.node if n.op_type == "BatchNormalization"]:
        conv = producer.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or len(readers[bn.input[0]]) != 1:
            sys.exit(f"onnx_for_peers: BatchNormalization '{bn.name}' does not follow a Conv alone")
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale, bias, mean, var = (numpy_helper.to_array(inits[x]).astype(np.float64) for x in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        b = numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if len(conv.input) > 2 else np.zeros(w.shape[0])
        k = scale / np.sqrt(var + eps)
        w_name, b_name = conv.name + "_w_folded", conv.name + "_b_folded"
        g.initializer.append(numpy_helper.from_array((w * k.reshape(-1, 1, 1, 1)).astype(np.float32), w_name))
        g.initializer.append(numpy_helper.from_array(((b - mean) * k + bias).astype(np.float32), b_name))
        conv.input[:] = [conv.input[0], w_name, b_name]
        conv.output[0] = bn.output[0]
        drop.append(bn)
    for n in drop:
        g.node.remove(n)
    for n in g.node:
        if n.op_type != "Gemm":
            continue
        tb = next((a for a in n.attribute if a.name == "transB"), None)
        if tb is not None and tb.i == 1:
            continue
        w = numpy_helper.to_array(inits[n.input[1]]).T.copy()
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(w, n.input[1]))
        if tb is None:
            n.attribute.append(helper.make_attribute("transB", 1))
        else:
            tb.i = 1
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    print(f"wrote {dst}: {len(drop)} batch norms folded")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
