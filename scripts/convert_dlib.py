#!/usr/bin/env python3
"""Convert dlib's face descriptor (dlib_face_recognition_resnet_model_v1.dat) to ONNX.

The .dat is dlib's own `serialize` stream of the `anet_type` network of dlib's
dnn_face_recognition_ex.cpp; it is read here directly (no dlib needed), following the
serialize/deserialize functions of dlib 19.24 (dnn/core.h, layers.h, input.h, loss.h,
cuda/tensor.h, serialize.h). The graph is the one models/README.md describes (opset 13, input
raw RGB 0..255, mean subtraction and /256 inside) and is written deterministically: the same
.dat gives the same bytes every time (fixed tensor names, no node names, no timestamps, no
producer version), byte-identical to the reference model of the mirror.

    convert_dlib.py --dat dlib_face_recognition_resnet_model_v1.dat --out model.onnx

Needs numpy and onnx (setup.sh makes a venv under .deps/ with pinned versions).
"""
import argparse
import hashlib
import math
import os
import sys

import numpy as np

# The network of dlib's dnn_face_recognition_ex.cpp (anet_type), written as dlib's templates
# nest it, outermost first, so the stream (each layer serialises its subnetwork before its own
# details) can be walked without guessing.


def _block(n, stride, sub):
    # block<N,BN,stride,SUBNET> = BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>>
    return [("affine",), ("con", n, 3, 3, 1, 1), ("relu",), ("affine",), ("con", n, 3, 3, stride, stride)] + sub


def _ares(n, sub):
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [("relu",), ("add_prev", 1)] + _block(n, 1, [("tag", 1)] + sub)


def _ares_down(n, sub):
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return [("relu",), ("add_prev", 2), ("avg_pool", 2, 2, 2, 2), ("skip", 1), ("tag", 2)] + _block(
        n, 2, [("tag", 1)] + sub
    )


def anet_type():
    """Layers of anet_type below the loss, outermost first; the last one sits on the input."""
    net = [("max_pool", 3, 3, 2, 2), ("relu",), ("affine",), ("con", 32, 7, 7, 2, 2)]
    net = _ares(32, _ares(32, _ares(32, net)))  # alevel4
    net = _ares(64, _ares(64, _ares(64, _ares_down(64, net))))  # alevel3
    net = _ares(128, _ares(128, _ares_down(128, net)))  # alevel2
    net = _ares(256, _ares(256, _ares_down(256, net)))  # alevel1
    net = _ares_down(256, net)  # alevel0
    return [("fc_no_bias", 128), ("avg_pool_everything",)] + net


class FormatError(Exception):
    pass


class Reader:
    """dlib's serialize.h primitives over a byte buffer."""

    def __init__(self, data):
        self.b = memoryview(data)
        self.pos = 0

    def _take(self, n):
        if self.pos + n > len(self.b):
            raise FormatError(f"truncated at byte {self.pos} (wanted {n} more)")
        s = self.b[self.pos : self.pos + n]
        self.pos += n
        return s

    def int(self):
        # pack_int: a control byte (size in the low 4 bits, 0x80 = negative), then the
        # magnitude little-endian; unsigned types use the same layout without the sign bit.
        ctrl = self._take(1)[0]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise FormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos - 1}")
        v = int.from_bytes(self._take(size), "little")
        return -v if ctrl & 0x80 else v

    def expect_int(self, want, what):
        v = self.int()
        if v not in want:
            raise FormatError(f"{what}: found {v}, expected one of {sorted(want)} (byte {self.pos})")
        return v

    def string(self):
        n = self.int()
        if n < 0 or n > 256:
            raise FormatError(f"bad string length {n} at byte {self.pos}")
        return bytes(self._take(n)).decode("ascii", "replace")

    def bool(self):
        c = self._take(1)[0]
        if c not in (ord("0"), ord("1")):
            raise FormatError(f"bad bool 0x{c:02x} at byte {self.pos - 1}")
        return c == ord("1")

    def float(self):
        # float_details: mantissa (int64) and exponent (int16); value = ldexp(mantissa, exponent).
        # The older ASCII format (control byte with bits in 0x70) is not used by this file.
        mantissa, exponent = self.int(), self.int()
        if exponent >= 32000:
            raise FormatError(f"non-finite float at byte {self.pos}")
        return float(np.float32(np.ldexp(float(mantissa), exponent)))

    def tensor(self):
        # resizable_tensor, version 2: num_samples, k, nr, nc, then raw little-endian float32.
        self.expect_int({2}, "tensor version")
        shape = tuple(self.int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise FormatError(f"bad tensor shape {shape} at byte {self.pos}")
        n = math.prod(shape)
        if 4 * n > len(self.b) - self.pos:
            raise FormatError(f"truncated: a tensor of {n} floats at byte {self.pos} runs past the end")
        return np.frombuffer(self._take(4 * n), dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self):
        self.expect_int({1}, "alias_tensor version")
        return tuple(self.int() for _ in range(4))


def read_layer(r, spec):
    """One layer's details (its `serialize(details)`), checked against what anet_type says."""
    kind = spec[0]
    tag = r.string()
    if kind == "con":
        if tag not in ("con_4", "con_5"):
            raise FormatError(f"expected con_, found {tag!r}")
        params = r.tensor()
        got = (r.int(), r.int(), r.int(), r.int(), r.int())  # num_filters, nr, nc, stride_y, stride_x
        pad = (r.int(), r.int())
        filters, biases = r.alias_tensor(), r.alias_tensor()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        use_bias = r.bool() if tag == "con_5" else True
        if got != spec[1:]:
            raise FormatError(f"con {got} where anet_type has {spec[1:]}")
        # dlib's default padding: none for strided layers, half the window otherwise.
        want_pad = (0 if spec[4] != 1 else spec[2] // 2, 0 if spec[5] != 1 else spec[3] // 2)
        if pad != want_pad:
            raise FormatError(f"con padding {pad}, expected {want_pad}")
        nf, nb = math.prod(filters), math.prod(biases)
        if not use_bias or filters[0] != spec[1] or filters[2:] != spec[2:4] or nb != spec[1] or nf + nb != params.size:
            raise FormatError(f"con parameters {params.shape} (bias {use_bias}) are not filters {filters} and biases {biases}")
        flat = params.reshape(-1)
        w, b = flat[:nf].reshape(filters), flat[nf:]
        return {"kind": "con", "w": w, "b": b, "kernel": spec[2:4], "stride": spec[4:6], "pad": pad}
    if kind == "affine":
        if tag not in ("affine_", "affine_2"):
            raise FormatError(f"expected affine_, found {tag!r}")
        params = r.tensor()
        g_shape, b_shape = r.alias_tensor(), r.alias_tensor()
        mode = r.int()
        disabled = r.bool() if tag == "affine_2" else False
        ng = math.prod(g_shape)
        flat = params.reshape(-1)
        if mode != 0 or disabled or flat.size != ng + math.prod(b_shape):
            raise FormatError(f"unsupported affine (mode {mode}, disabled {disabled}, params {params.shape})")
        return {"kind": "affine", "gamma": flat[:ng], "beta": flat[ng:]}
    if kind == "relu":
        if tag != "relu_":
            raise FormatError(f"expected relu_, found {tag!r}")
        return {"kind": "relu"}
    if kind in ("max_pool", "avg_pool", "avg_pool_everything"):
        name = "max_pool_2" if kind == "max_pool" else "avg_pool_2"
        if tag != name:
            raise FormatError(f"expected {name}, found {tag!r}")
        got = (r.int(), r.int(), r.int(), r.int())  # nr, nc, stride_y, stride_x
        pad = (r.int(), r.int())
        want = spec[1:] if kind != "avg_pool_everything" else (0, 0, 1, 1)
        if got != tuple(want) or pad != (0, 0):
            raise FormatError(f"{kind} {got} pad {pad} where anet_type has {want} pad (0, 0)")
        return {"kind": kind, "kernel": got[:2], "stride": got[2:]}
    if kind == "add_prev":
        if tag != "add_prev_":
            raise FormatError(f"expected add_prev_, found {tag!r}")
        return {"kind": "add_prev", "tag": spec[1]}
    if kind == "fc_no_bias":
        if tag not in ("fc_2", "fc_3"):
            raise FormatError(f"expected fc_, found {tag!r}")
        n_out, n_in = r.int(), r.int()
        params = r.tensor()
        w_shape, _ = r.alias_tensor(), r.alias_tensor()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if tag == "fc_3":
            r.bool()
        if n_out != spec[1] or bias_mode != 1 or w_shape[:2] != (n_in, n_out) or params.size != n_in * n_out:
            raise FormatError(f"unsupported fc ({n_in}->{n_out}, bias mode {bias_mode}, params {params.shape})")
        return {"kind": "fc", "w": params.reshape(n_in, n_out)}
    raise FormatError(f"no reader for {kind}")


def read_dat(data):
    """Parses the .dat; returns the input's mean (R, G, B) and the layers, input side first."""
    r = Reader(data)
    net = anet_type()
    r.expect_int({1}, "add_loss_layer version")
    loss = r.string()
    if loss == "loss_metric_2":
        r.float(), r.float()  # margin, distance threshold: training only
    elif loss != "loss_metric_":
        raise FormatError(f"expected loss_metric_, found {loss!r}")
    # The wrappers' versions, outermost first (each serialises its version, then its subnetwork).
    versions = []
    for spec in net[:-1]:
        if spec[0] in ("tag", "skip"):
            r.expect_int({1}, f"add_{spec[0]}_layer version")
            versions.append(None)
        else:
            versions.append(r.expect_int({1, 2}, "add_layer version"))
    input_version = r.expect_int({2, 3}, "input add_layer version")
    if r.string() != "input_rgb_image_sized":
        raise FormatError("expected input_rgb_image_sized")
    mean = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (150, 150):
        raise FormatError("the input is not 150x150")

    def rest_of_add_layer(grad_final):
        r.bool(), r.bool(), r.bool()  # setup called, gradient stale, output disabled
        r.tensor(), r.tensor()  # x_grad, cached_output (empty in a saved net)
        if grad_final:
            r.tensor()

    layers = [read_layer(r, net[-1])]
    rest_of_add_layer(True)
    if input_version >= 3:
        r.int()  # sample expansion factor
    for spec, version in zip(reversed(net[:-1]), reversed(versions)):
        if spec[0] in ("tag", "skip"):
            layers.append({"kind": spec[0], "tag": spec[1]})
            continue
        layers.append(read_layer(r, spec))
        rest_of_add_layer(version == 2)
    if r.pos != len(data):
        raise FormatError(f"{len(data) - r.pos} bytes left after the network")
    return mean, layers


def build_onnx(mean, layers, source_sha256):
    """The ONNX graph, in dlib's evaluation order; names come from one counter, so fixed."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = [0]

    def name(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def const(prefix, array):
        n = name(prefix)
        inits.append(numpy_helper.from_array(array, n))
        return n

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def out_size(size, kernel, stride, pad):
        return (size + 2 * pad - kernel) // stride + 1

    # input_rgb_image_sized: (pixel - mean) / 256, RGB planes.
    out = name("sub")
    x = node("Sub", ["input", const("mean", np.array(mean, np.float32).reshape(1, 3, 1, 1))], out)
    out = name("scale")
    x = node("Mul", [x, const("inv256", np.array(1 / 256, np.float32))], out)
    shape = (3, 150, 150)
    tags = {}
    for layer in layers:
        kind = layer["kind"]
        if kind == "con":
            out = name("conv")
            (kh, kw), (sy, sx), (py, px) = layer["kernel"], layer["stride"], layer["pad"]
            if layer["w"].shape[1] != shape[0]:
                raise FormatError(f"con takes {layer['w'].shape[1]} channels, the network gives {shape[0]}")
            w, b = const("W", layer["w"]), const("B", layer["b"])
            x = node("Conv", [x, w, b], out, kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
            shape = (layer["w"].shape[0], out_size(shape[1], kh, sy, py), out_size(shape[2], kw, sx, px))
        elif kind == "affine":
            c = shape[0]
            if layer["gamma"].size != c or layer["beta"].size != c:
                raise FormatError(f"affine of {layer['gamma'].size} channels where the network gives {c}")
            out = name("mul")
            x = node("Mul", [x, const("gamma", layer["gamma"].reshape(1, c, 1, 1))], out)
            out = name("add")
            x = node("Add", [x, const("beta", layer["beta"].reshape(1, c, 1, 1))], out)
        elif kind == "relu":
            x = node("Relu", [x], name("relu"))
        elif kind in ("max_pool", "avg_pool"):
            op = "MaxPool" if kind == "max_pool" else "AveragePool"
            (kh, kw), (sy, sx) = layer["kernel"], layer["stride"]
            x = node(op, [x], name(op), kernel_shape=[kh, kw], strides=[sy, sx], pads=[0, 0, 0, 0])
            shape = (shape[0], out_size(shape[1], kh, sy, 0), out_size(shape[2], kw, sx, 0))
        elif kind == "tag":
            tags[layer["tag"]] = (x, shape)
        elif kind == "skip":
            x, shape = tags[layer["tag"]]
        elif kind == "add_prev":
            # dlib adds tensors of different sizes by zero-padding the smaller one at the end of
            # each dimension (channels, rows, columns).
            prev, prev_shape = tags[layer["tag"]]
            big = tuple(max(a, b) for a, b in zip(shape, prev_shape))
            operands = []
            for t, s in ((x, shape), (prev, prev_shape)):
                if s != big:
                    out = name("pad")
                    pads = np.array([0, 0, 0, 0, 0] + [bb - ss for bb, ss in zip(big, s)], np.int64)
                    t = node("Pad", [t, const("pads", pads)], out, mode="constant")
                operands.append(t)
            x = node("Add", operands, name("res"))
            shape = big
        elif kind == "avg_pool_everything":
            x = node("GlobalAveragePool", [x], name("gap"))
            x = node("Flatten", [x], name("flat"), axis=1)
            shape = (shape[0],)
        elif kind == "fc":
            if layer["w"].shape[0] != shape[0]:
                raise FormatError(f"fc takes {layer['w'].shape[0]} inputs, the network gives {shape[0]}")
            x = node("MatMul", [x, const("fcW", layer["w"])], "embedding")
            shape = (layer["w"].shape[1],)
        else:
            raise FormatError(f"no ONNX for {kind}")
    if x != "embedding":
        raise FormatError("the network does not end in fc_no_bias")

    graph = helper.make_graph(
        nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 150, 150])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", shape[0]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        ir_version=8,
        producer_name="xml-to-onnx (weights: dlib net_to_xml of dlib_face_recognition_resnet_model_v1.dat)",
        doc_string=DOC,
    )
    # make_model stamps no time, but pin every field that a newer onnx might fill in.
    model.ClearField("producer_version")
    model.ClearField("model_version")
    model.ClearField("domain")
    for k, v in [
        ("source", f"dlib_face_recognition_resnet_model_v1.dat sha256 {source_sha256}"),
        ("license", "CC0-1.0 (model weights, Davis King / dlib-models)"),
        ("input_color", "RGB"),
        ("input_range", "0..255"),
        ("input_size", "150x150"),
    ]:
        model.metadata_props.add(key=k, value=v)
    return model


DOC = (
    "dlib face recognition ResNet (29 conv layers), weights converted 1:1 from "
    "dlib_face_recognition_resnet_model_v1.dat (Davis King, CC0-1.0). Input: N x 3 x 150 x 150 float32, "
    "RGB channel order, raw pixel values 0..255 (mean subtraction (122.782,117.001,104.298) and /256 are "
    "inside the graph). Input must be a 150x150 aligned face chip as produced by dlib "
    "get_face_chip_details(shape5, 150, 0.25). Output: 128-d descriptor (not normalized); same person if "
    "Euclidean distance < 0.6."
)


def convert(dat_bytes):
    """The ONNX model's bytes for a .dat's bytes."""
    import onnx

    mean, layers = read_dat(dat_bytes)
    model = build_onnx(mean, layers, hashlib.sha256(dat_bytes).hexdigest())
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dat", required=True, help="dlib_face_recognition_resnet_model_v1.dat")
    ap.add_argument("--sha256", help="refuse a .dat without this sha256")
    ap.add_argument("--out", required=True, help="the ONNX file to write")
    a = ap.parse_args()
    with open(a.dat, "rb") as f:
        data = f.read()
    got = hashlib.sha256(data).hexdigest()
    if a.sha256 and got != a.sha256:
        sys.exit(f"convert_dlib: {a.dat} has sha256 {got}, expected {a.sha256}")
    try:
        out = convert(data)
    except FormatError as e:
        sys.exit(f"convert_dlib: {a.dat} is not dlib's face descriptor network: {e}")
    tmp = a.out + ".part"
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, a.out)
    print(f"[convert] {a.out}: {len(out)} bytes, sha256 {hashlib.sha256(out).hexdigest()}")


if __name__ == "__main__":
    main()
