#!/usr/bin/env python3
"""Generates a BOSH release for scripts/bench-bosh.sh.

usage: gen-bosh-release.py DIR [PACKAGES=30] [LEVELS=10] [FILES=2000]

PACKAGES C libraries in LEVELS levels; each package of level L>0 depends on every
package of level L-1 (so the chain is LEVELS deep and each level can compile in
parallel). FILES source files are spread evenly; each package compiles its .c files
with one cc call, archives them and installs lib + headers into BOSH_INSTALL_TARGET.
Dependencies are read through ${PKGS:-/var/vcap/packages}/<dep>, so the same scripts
run natively with PKGS pointing elsewhere.
"""
import os
import sys

out = sys.argv[1]
npk = int(sys.argv[2]) if len(sys.argv) > 2 else 30
levels = int(sys.argv[3]) if len(sys.argv) > 3 else 10
nfiles = int(sys.argv[4]) if len(sys.argv) > 4 else 2000

per_level = [npk // levels + (1 if i < npk % levels else 0) for i in range(levels)]
names = []
for lvl, count in enumerate(per_level):
    names.append(["pkg_l%02d_%d" % (lvl, i) for i in range(count)])

os.makedirs(os.path.join(out, "config"), exist_ok=True)
with open(os.path.join(out, "config/final.yml"), "w") as f:
    f.write("name: bench\n")
all_names = [n for lvl in names for n in lvl]
per_pkg = nfiles // len(all_names)
extra = nfiles - per_pkg * len(all_names)
for idx, name in enumerate(all_names):
    lvl = int(name[5:7])
    deps = names[lvl - 1] if lvl > 0 else []
    src = os.path.join(out, "src", name)
    os.makedirs(os.path.join(src, "include"), exist_ok=True)
    count = per_pkg + (1 if idx < extra else 0)
    # one header, the rest C files
    with open(os.path.join(src, "include", name + ".h"), "w") as f:
        f.write("int %s_sum(void);\n" % name)
    for i in range(count - 1):
        with open(os.path.join(src, "f%03d.c" % i), "w") as f:
            f.write("static int table[64] = {%s};\n" % ",".join(str(j * i % 97) for j in range(64)))
            f.write("int %s_f%03d(void) { int s = 0; for (int j = 0; j < 64; j++) s += table[j]; return s; }\n" % (name, i))
    pdir = os.path.join(out, "packages", name)
    os.makedirs(pdir, exist_ok=True)
    with open(os.path.join(pdir, "spec"), "w") as f:
        f.write("---\nname: %s\ndependencies: [%s]\nfiles:\n- %s/**/*\n" % (name, ", ".join(deps), name))
    incs = " ".join("-I${PKGS:-/var/vcap/packages}/%s/include" % d for d in deps)
    checks = "".join("test -f ${PKGS:-/var/vcap/packages}/%s/lib/lib%s.a\n" % (d, d) for d in deps)
    with open(os.path.join(pdir, "packaging"), "w") as f:
        f.write("set -e\n" + checks +
                "cc -O1 -c %s -I%s/include %s/*.c\n" % (incs, name, name) +
                "ar rcs lib%s.a *.o\n" % name +
                "mkdir -p ${BOSH_INSTALL_TARGET}/lib ${BOSH_INSTALL_TARGET}/include\n"
                "cp lib%s.a ${BOSH_INSTALL_TARGET}/lib/\n" % name +
                "cp %s/include/*.h ${BOSH_INSTALL_TARGET}/include/\n" % name)
print("release %s: %d packages in %d levels, %d source files" % (out, len(all_names), levels, nfiles))
