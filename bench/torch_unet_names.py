#!/usr/bin/env python3
"""Checks, without PyTorch, that bench/torch_unet.py's UNet has exactly the parameter names and
shapes of a folder `latte export-random` wrote: the module is built against a stub `torch` that
only records parameters. Usage: python3 bench/torch_unet_names.py DIR (exit 1 on a mismatch)."""
import json, os, struct, sys, types


class Module:
    def __init__(self):
        object.__setattr__(self, "_m", {})
        object.__setattr__(self, "_p", {})

    def __setattr__(self, k, v):
        if isinstance(v, Module):
            self._m[k] = v
        object.__setattr__(self, k, v)

    def params(self, prefix=""):
        for k, v in self._p.items():
            yield prefix + k, v
        for k, m in self._m.items():
            yield from m.params(prefix + k + ".")


class ModuleList(Module):
    def __init__(self, items=()):
        super().__init__()
        for x in items:
            self.append(x)

    def append(self, x):
        self._m[str(len(self._m))] = x

    def __getitem__(self, i):
        return self._m[str(i)]


def layer(shape):  # a layer with weight `shape(*args)` and a bias of its first dim (unless bias=False)
    def init(self, *a, **kw):
        Module.__init__(self)
        self._p["weight"] = shape(*a)
        if kw.get("bias", True):
            self._p["bias"] = shape(*a)[:1]
        self.in_features = a[0]
    return init


nn = types.ModuleType("torch.nn")
nn.Module, nn.ModuleList = Module, ModuleList
nn.Linear = type("Linear", (Module,), {"__init__": layer(lambda i, o: [o, i])})
nn.Conv2d = type("Conv2d", (Module,), {"__init__": layer(lambda i, o, k: [o, i, k, k])})
nn.GroupNorm = type("GroupNorm", (Module,), {"__init__": layer(lambda g, c: [c])})
nn.LayerNorm = type("LayerNorm", (Module,), {"__init__": layer(lambda c: [c])})
nn.Dropout = type("Dropout", (Module,), {"__init__": lambda self, p: Module.__init__(self)})
nn.functional = types.ModuleType("torch.nn.functional")
torch = types.ModuleType("torch")
torch.nn, torch.float16, torch.float32, torch.bfloat16, torch.float64 = nn, 0, 1, 2, 3
sys.modules.update({"torch": torch, "torch.nn": nn, "torch.nn.functional": nn.functional})
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402

folder = sys.argv[1]
mine = dict(torch_unet.UNet(json.load(open(os.path.join(folder, "config.json")))).params())
with open(os.path.join(folder, "diffusion_pytorch_model.safetensors"), "rb") as f:
    header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
theirs = {k: v["shape"] for k, v in header.items() if k != "__metadata__"}
bad = sorted(set(mine) ^ set(theirs)) + [k for k in mine if k in theirs and list(mine[k]) != theirs[k]]
print("%d parameters in the module, %d in the file; %d mismatches %s" % (len(mine), len(theirs), len(bad), bad[:5]))
sys.exit(1 if bad else 0)
