#!/usr/bin/python3
"""Checks an ONNX file as a user would: onnx.checker with full_check (which
runs strict shape inference), then prints the opset, the IR version and the
graph's inputs and outputs with their inferred shapes. Debian's python3-onnx.

    /usr/bin/python3 scripts/onnx_check.py model.onnx
"""
import sys

import onnx
from onnx import shape_inference


def shape(v):
    dims = v.type.tensor_type.shape.dim
    return "x".join(d.dim_param or str(d.dim_value) for d in dims)


def main(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    opsets = ",".join("%s:%d" % (o.domain or "ai.onnx", o.version) for o in model.opset_import)
    print("checker ok: onnx %s, opset %s, ir_version %d" % (onnx.__version__, opsets, model.ir_version))
    for v in inferred.graph.input:
        print("input %s %s" % (v.name, shape(v)))
    for v in inferred.graph.output:
        print("output %s %s" % (v.name, shape(v)))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: onnx_check.py MODEL.onnx")
    main(sys.argv[1])
