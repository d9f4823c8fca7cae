#!/usr/bin/env python3
"""Writes tiny-context.safetensors: stand-in text-encoder outputs for the bundled unet-tiny model.

`cond` and `uncond` are [1, 77, 32] float32 (77 CLIP tokens, unet-tiny's cross_attention_dim 32),
N(0, 1) from numpy's PCG64 seeded with 0 and 1. They are not text embeddings (the text encoder is
not part of Latte); they only give `latte sample` something of the right shape to condition on.
Needs numpy only: safetensors is an 8-byte little-endian header length, a JSON header, raw bytes.

    python3 examples/make-tiny-context.py   # rewrites examples/tiny-context.safetensors
"""
import json
import pathlib
import struct

import numpy as np


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # pad to 8 bytes, as the safetensors library does
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


if __name__ == "__main__":
    out = pathlib.Path(__file__).resolve().parent / "tiny-context.safetensors"
    write_safetensors(out, {
        "cond": np.random.default_rng(0).standard_normal((1, 77, 32)),
        "uncond": np.random.default_rng(1).standard_normal((1, 77, 32)),
    })
    print(f"wrote {out}")
