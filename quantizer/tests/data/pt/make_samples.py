#!/usr/bin/env python3
"""Writes small torch-layout checkpoints for quantizer/tests/pt.rs, without torch.

Fake `torch`, `torch._utils`, `torch.nn.modules.*` and `ultralytics.*` modules are
put in sys.modules so CPython's own pickler (what torch.save uses, protocol 2)
emits the same opcodes and globals as a real `best.pt`: NEWOBJ + BUILD for
modules, `_rebuild_tensor_v2`/`_rebuild_parameter` REDUCEs, BINPERSID storages
`('storage', torch.HalfStorage, key, 'cpu', numel)`, OrderedDicts and sets.
Run from this folder: `python3 make_samples.py` (deterministic output).
"""
import collections
import io
import pickle
import struct
import sys
import types
import zipfile


def module(name):
    parts = name.split(".")
    for i in range(1, len(parts)):  # parents must import too
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    m = types.ModuleType(name)
    sys.modules[name] = m
    return m


torch = module("torch")
utils = module("torch._utils")


def _rebuild_tensor_v2(*a):
    raise RuntimeError("never called")


def _rebuild_parameter(*a):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
_rebuild_parameter.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
utils._rebuild_parameter = _rebuild_parameter

STORAGE_FMT = {"HalfStorage": "e", "FloatStorage": "f", "DoubleStorage": "d", "LongStorage": "q",
               "BFloat16Storage": "bf16"}
for n in STORAGE_FMT:
    c = type(n, (), {"__module__": "torch"})
    setattr(torch, n, c)


class Storage:
    def __init__(self, kind, values):
        self.kind, self.values = kind, list(values)

    def raw(self):
        f = STORAGE_FMT[self.kind]
        if f == "bf16":
            return b"".join(struct.pack("<f", v)[2:] for v in self.values)
        vals = [int(v) for v in self.values] if f == "q" else self.values
        return struct.pack("<%d%s" % (len(vals), f), *vals)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, proto):
        return (utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class Parameter:
    def __init__(self, t):
        self.t = t

    def __reduce_ex__(self, proto):
        return (utils._rebuild_parameter, (self.t, True, collections.OrderedDict()))


def contiguous(size):
    st, acc = [], 1
    for d in reversed(size):
        st.append(acc)
        acc *= d
    return list(reversed(st))


def tensor(kind, size, start=0.0, step=1.0):
    n = 1
    for d in size:
        n *= d
    return Tensor(Storage(kind, [start + step * i for i in range(n)]), 0, size, contiguous(size))


def cls(mod, name):
    m = sys.modules.get(mod) or module(mod)
    c = type(name, (), {"__module__": mod})
    setattr(m, name, c)
    return c


def make(c, params=(), buffers=(), modules=(), non_persistent=(), **attrs):
    o = c.__new__(c)
    o.__dict__.update({
        "training": False,
        "_parameters": collections.OrderedDict(params),
        "_buffers": collections.OrderedDict(buffers),
        "_non_persistent_buffers_set": set(non_persistent),
        "_forward_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(modules),
    })
    o.__dict__.update(attrs)
    return o


Conv2d = cls("torch.nn.modules.conv", "Conv2d")
BatchNorm2d = cls("torch.nn.modules.batchnorm", "BatchNorm2d")
Sequential = cls("torch.nn.modules.container", "Sequential")
SiLU = cls("torch.nn.modules.activation", "SiLU")
Linear = cls("torch.nn.modules.linear", "Linear")
Conv = cls("ultralytics.nn.modules.conv", "Conv")
Decoder = cls("ultralytics.nn.modules.head", "RTDETRDecoder")
Model = cls("ultralytics.nn.tasks", "RTDETRDetectionModel")
MNV4 = cls("ultralytics.nn.AddModules.MobileNetV4", "MobileNetV4")


class TorchPickler(pickle.Pickler):
    def __init__(self, f):
        super().__init__(f, protocol=2)
        self.storages = {}

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            key = self.storages.setdefault(id(obj), (str(len(self.storages)), obj))[0]
            return ("storage", getattr(torch, obj.kind), key, "cpu", len(obj.values))
        return None


def save(path, obj, prefix):
    buf = io.BytesIO()
    p = TorchPickler(buf)
    p.dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        def put(name, data):  # fixed timestamp: byte-identical output
            z.writestr(zipfile.ZipInfo(prefix + "/" + name, (2025, 1, 1, 0, 0, 0)), data)
        put("data.pkl", buf.getvalue())
        put("byteorder", "little")
        for key, s in p.storages.values():
            put("data/" + key, s.raw())
        put("version", "3\n")


def tiny():
    silu = make(SiLU)  # one instance shared by both Convs, like Conv.default_act
    w = tensor("HalfStorage", [4, 3, 1, 1], 0.5, 0.25)
    bn = make(BatchNorm2d, params=[("weight", Parameter(tensor("HalfStorage", [4], 1.0))),
                                   ("bias", Parameter(tensor("HalfStorage", [4], -1.0, 0.5)))],
              buffers=[("running_mean", tensor("HalfStorage", [4], 0.0, 0.125)),
                       ("running_var", tensor("HalfStorage", [4], 1.0, 0.5)),
                       ("num_batches_tracked", tensor("LongStorage", [], 7))],
              eps=1e-3)
    conv0 = make(Conv, modules=[("conv", make(Conv2d, params=[("weight", Parameter(w)), ("bias", None)],
                                              stride=(1, 1), groups=1)),
                                ("bn", bn), ("act", silu)])
    # A Linear whose weight is the transpose of a 3x2 fp32 storage (non-contiguous)
    # and whose bias views the same storage at an offset (shared storage).
    shared = Storage("FloatStorage", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    lin = make(Linear, params=[("weight", Parameter(Tensor(shared, 0, [2, 3], [1, 2]))),
                               ("bias", Parameter(Tensor(shared, 4, [2], [1])))])
    mixed = make(Conv, params=[("b16", Parameter(tensor("BFloat16Storage", [3], 1.5, 1.0))),
                               ("f64", Parameter(tensor("DoubleStorage", [2], 0.25, 0.5)))],
                 modules=[("act", silu), ("none", None)])
    dec = make(Decoder, params=[("bias", Parameter(tensor("HalfStorage", [2], 3.0)))],
               buffers=[("cache", tensor("FloatStorage", [2], 9.0))], non_persistent=["cache"],
               anchors=tensor("HalfStorage", [0]), valid_mask=tensor("HalfStorage", [0]), nc=2)
    backbone = make(MNV4, modules=[("conv0", conv0)])
    seq = make(Sequential, modules=[("0", backbone), ("1", lin), ("2", mixed), ("3", dec)])
    yaml = {"nc": 2, "backbone": [[-1, 1, "MobileNetV4ConvSmall", []]],
            "head": [[-1, 1, "Conv", [4, 1, 1]], [[-1], 1, "RTDETRDecoder", ["nc", 4]]]}
    m = make(Model, modules=[("model", seq)], yaml=yaml, names={1: "dog", 0: "cat"},
             stride=tensor("FloatStorage", [1], 32.0), nc=2)
    return {"date": "2025-01-01T00:00:00+00:00", "version": "8.4.190", "epoch": -1,
            "best_fitness": None, "model": m, "ema": None, "train_args": {"model": "x.yaml", "cfg": yaml},
            "train_metrics": {}, "git": {"root": "None"}}


def cycle():
    """A module that lists itself among its children (memo cycle)."""
    seq = make(Sequential)
    seq._modules["0"] = seq
    return {"model": make(Model, modules=[("model", seq)]), "ema": None}


def short_storage():
    """A 2x3 view of a 5-element storage."""
    t = Tensor(Storage("HalfStorage", [1.0] * 5), 0, [2, 3], [3, 1])
    return {"model": make(Model, params=[("w", Parameter(t))]), "ema": None}


def ema_only():
    """A training checkpoint (`last.pt`): model None, the EMA holds the weights."""
    lin = make(Linear, params=[("weight", Parameter(tensor("HalfStorage", [1, 2], 2.0)))])
    return {"model": None, "ema": make(Model, modules=[("model", make(Sequential, modules=[("0", lin)]))],
                                       names=["a"]),
            "optimizer": None}


if __name__ == "__main__":
    save("tiny.pt", tiny(), "tiny")
    save("cycle.pt", cycle(), "archive")
    save("short_storage.pt", short_storage(), "archive")
    save("ema_only.pt", ema_only(), "last")
