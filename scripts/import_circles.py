"""Lists import circles between the modules of each crate of the workspace and exits 1 if any.

A module A that names `crate::B` (or `super::B`) while B, directly or through other modules,
names A is a circle; a module and its own submodules are left out (a folder's `mod.rs` declares
its children). Test modules (`#[cfg(test)]` onwards) are ignored. Run from the repository root:
`python3 scripts/import_circles.py` (CI does).
"""
import os
import re
import sys


def modules(src):
    """Module path (tuple) -> source text, for every .rs file under `src`."""
    found = {}
    for folder, _, files in os.walk(src):
        for name in files:
            if name.endswith(".rs"):
                rel = os.path.relpath(os.path.join(folder, name), src)[:-3].split("/")
                if rel[-1] in ("mod", "lib", "main"):
                    rel = rel[:-1]
                with open(os.path.join(folder, name)) as f:
                    found[tuple(rel)] = f.read()
    return found


def related(a, b):
    """Whether one module is the other or contains it."""
    return a[: len(b)] == b or b[: len(a)] == a


def edges_of(mods):
    edges = {m: set() for m in mods}
    for m, text in mods.items():
        text = re.sub(r"//.*", "", text).split("#[cfg(test)]")[0]
        for prefix, path in re.findall(r"\b(crate|super)((?:::\w+)+)", text):
            segs = tuple(path.strip(":").split("::"))
            base = () if prefix == "crate" else m[:-1]
            for i in range(len(segs), 0, -1):
                if base + segs[:i] in mods:
                    edges[m].add(base + segs[:i])
                    break
    return edges


def reaches(edges, start, goal):
    seen, stack = set(), [start]
    while stack:
        v = stack.pop()
        if v == goal:
            return True
        if v not in seen:
            seen.add(v)
            stack.extend(w for w in edges[v] if w == goal or not related(v, w))
    return False


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    srcs = ["src"] + [f"crates/{c}/src" for c in sorted(os.listdir(f"{root}/crates"))]
    circles = 0
    for src in srcs:
        if not os.path.isdir(f"{root}/{src}"):
            continue
        mods = modules(f"{root}/{src}")
        edges = edges_of(mods)
        pairs = set()
        for a in sorted(mods):
            for b in sorted(edges[a]):
                if not related(a, b) and reaches(edges, b, a):
                    pairs.add(tuple(sorted((a, b))))
        for a, b in sorted(pairs):
            circles += 1
            print(f"{src}: {'/'.join(a) or 'lib'} <-> {'/'.join(b) or 'lib'}")
    print(f"{circles} import circle(s)")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
