#!/usr/bin/env python3
"""Hostile-spec probe: mutate real spec files and count how `spk lint` fails on them.

    scripts/spec-mutants.py generate OUT_DIR [--count 3000] [--seed 14]
    scripts/spec-mutants.py run OUT_DIR SPK_BINARY [--hang 5]

`generate` writes OUT_DIR/NNNN.spk.yaml mutants of the conformance corpus
(../shared/conformance/spk-specs) and tests/fixtures. `run` lints each one and counts
crashes (killed by a signal, e.g. a stack overflow abort), hangs (longer than --hang
seconds) and errors whose first line has no FILE:LINE:COL location.
"""

import os
import random
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_DIRS = [
    os.path.join(ROOT, "..", "shared", "conformance", "spk-specs"),
    "/work/shared/conformance/spk-specs",
    os.path.join(ROOT, "tests", "fixtures"),
]

# Fragments a hostile or careless author might insert.
HOSTILE = [
    b"{% macro m() %}{{ self::m() }}{% endmacro m %}{{ self::m() }}",
    b"{% for i in range(end=100000000) %}x{% endfor %}",
    b"{% for i in range(end=10, step_by=0) %}x{% endfor %}",
    b"{{ 99999999999999999999 }}",
    b'{% include "other.yaml" %}',
    b'{% import "m.tera" as m %}',
    b"{{ opt.nope }}",
    b"{%",
    b"{{",
    b"}}",
    b"\xff\xfe",
    b"\xc3",
    b"\n---\npkg: other/1.0\n",
    b"\n...\n",
    b"[" * 5000,
    b"{a: " * 3000,
    b"(" * 3000,
    b"{% if true %}" * 2000,
    b"&a ",
    b"*a",
    b"!!binary ",
    b"\t",
    b"\x00",
    b"pkg: " + b"a" * 200000 + b"/1.0",
    b": :",
    b"- ",
    b"'",
    b'"',
    b"|",
    b">",
    b"#",
]


def seeds():
    out = []
    seen = set()
    for d in SEED_DIRS:
        d = os.path.realpath(d)
        if not os.path.isdir(d) or d in seen:
            continue
        seen.add(d)
        for base, _, files in os.walk(d):
            for f in sorted(files):
                if f.endswith((".yaml", ".yml")):
                    with open(os.path.join(base, f), "rb") as fh:
                        out.append(fh.read())
    if not out:
        sys.exit("no seed specs found")
    return out


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(9)
        pos = rng.randint(0, len(data))
        if kind == 0 and data:  # flip a byte
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        elif kind == 1:  # insert a hostile fragment
            data[pos:pos] = rng.choice(HOSTILE)
        elif kind == 2 and data:  # delete a span
            data[pos : pos + rng.randint(1, 40)] = b""
        elif kind == 3:  # duplicate a line
            lines = bytes(data).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
            data = bytearray(b"\n".join(lines))
        elif kind == 4:  # swap two lines
            lines = bytes(data).split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
        elif kind == 5:  # change indentation
            lines = bytes(data).split(b"\n")
            i = rng.randrange(len(lines))
            lines[i] = b" " * rng.randint(0, 6) + lines[i].lstrip()
            data = bytearray(b"\n".join(lines))
        elif kind == 6:  # truncate
            data = data[:pos]
        elif kind == 7:  # insert a random ASCII punctuation character
            data[pos:pos] = bytes([rng.choice(b"{}[]%#:-,'\"&*!|>?")])
        else:  # repeat a span many times
            span = bytes(data[pos : pos + rng.randint(1, 8)]) or b"["
            data[pos:pos] = span * rng.randint(2, 3000)
    return bytes(data)


def generate(out_dir, count, seed):
    rng = random.Random(seed)
    corpus = seeds()
    os.makedirs(out_dir, exist_ok=True)
    for n in range(count):
        with open(os.path.join(out_dir, "%04d.spk.yaml" % n), "wb") as fh:
            fh.write(mutate(rng, rng.choice(corpus)))
    print("wrote %d mutants of %d seeds to %s" % (count, len(corpus), out_dir))


LOCATED = re.compile(rb"^error: [^\n]*?\.spk\.yaml:\d+:\d+: ")


def run(out_dir, spk, hang):
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".spk.yaml"))
    crashes, hangs, unlocated, ok, located = [], [], [], 0, 0
    for f in files:
        path = os.path.join(out_dir, f)
        start = time.monotonic()
        try:
            p = subprocess.run(
                [spk, "lint", path],
                capture_output=True,
                timeout=hang + 1,
                env=dict(os.environ, RUST_BACKTRACE="0"),
            )
        except subprocess.TimeoutExpired:
            hangs.append(f)
            continue
        took = time.monotonic() - start
        if took > hang:
            hangs.append(f)
        elif p.returncode < 0 or p.returncode > 1:
            crashes.append(f)
        elif p.returncode == 0:
            ok += 1
        elif LOCATED.match(p.stderr):
            located += 1
        else:
            unlocated.append((f, p.stderr.split(b"\n")[0][:160].decode("utf-8", "replace")))
    print("mutants: %d  ok: %d  located errors: %d" % (len(files), ok, located))
    print("crashes: %d  hangs (> %ss): %d  errors without FILE:LINE:COL: %d"
          % (len(crashes), hang, len(hangs), len(unlocated)))
    for f in crashes[:10]:
        print("  crash:", f)
    for f in hangs[:10]:
        print("  hang:", f)
    for f, line in unlocated[:15]:
        print("  unlocated:", f, line)


def main():
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "generate":
        count = int(args[args.index("--count") + 1]) if "--count" in args else 3000
        seed = int(args[args.index("--seed") + 1]) if "--seed" in args else 14
        generate(args[1], count, seed)
    elif len(args) >= 3 and args[0] == "run":
        hang = float(args[args.index("--hang") + 1]) if "--hang" in args else 5.0
        run(args[1], args[2], hang)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
