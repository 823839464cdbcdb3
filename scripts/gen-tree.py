#!/usr/bin/env python3
"""Generates the benchmark tree: many small files in nested dirs plus large files.

usage: gen-tree.py DEST [SMALL_COUNT] [BIG_COUNT]
Defaults: 45,000 files of 1-16 KiB and 50 files of 10-20 MiB (about 1 GiB in all);
half of the big files are compressible text, half random bytes. Deterministic.
"""
import os
import random
import sys

dest = sys.argv[1]
small = int(sys.argv[2]) if len(sys.argv) > 2 else 45000
big = int(sys.argv[3]) if len(sys.argv) > 3 else 50
rng = random.Random(42)
os.makedirs(dest, exist_ok=True)
pool = rng.randbytes(1 << 20)
for i in range(small):
    d = os.path.join(dest, f"lib{i % 30:02d}", f"pkg{i % 300:03d}", f"mod{i % 1500:04d}")
    os.makedirs(d, exist_ok=True)
    size = rng.randint(1024, 16 * 1024)
    off = rng.randint(0, len(pool) - size)
    with open(os.path.join(d, f"file{i}.dat"), "wb") as f:
        f.write(i.to_bytes(8, "little") + pool[off:off + size - 8])
    if i % 500 == 0:
        os.chmod(os.path.join(d, f"file{i}.dat"), 0o755)
os.makedirs(os.path.join(dest, "big"), exist_ok=True)
for i in range(big):
    size = rng.randint(10 << 20, 20 << 20)
    path = os.path.join(dest, "big", f"blob{i:02d}.bin")
    with open(path, "wb") as f:
        if i % 2 == 0:
            line = f"compressible line {i} of the benchmark tree\n".encode()
            f.write((line * (size // len(line) + 1))[:size])
        else:
            f.write(rng.randbytes(size))
