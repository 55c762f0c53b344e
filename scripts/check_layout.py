#!/usr/bin/env python3
"""Layout rules of the house (README, Development): no file under src/ over 800 lines, each file opens with a //!
comment, the engine imports nothing from cli/tui/server, and no import cycles between files of the engine or of the
server. Prints every violation; exit 1 if any. Imports inside #[cfg(test)] modules are ignored."""
import os, re, sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
files = {}
for d, _, fs in os.walk(ROOT):
    for f in fs:
        if f.endswith(".rs"):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, ROOT)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            files[tuple(parts)] = p

def strip_tests(text):
    # Drop #[cfg(test)] mod blocks (brace-matched).
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)

def resolve(mod, path):
    segs = path.split("::")
    if segs[0] == "crate":
        base = []
        segs = segs[1:]
    elif segs[0] in ("super", "self"):
        base = list(mod)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    else:
        return None
    cand = base + segs
    while cand:
        if tuple(cand) in files:
            return tuple(cand)
        cand = cand[:-1]
    return None

edges = defaultdict(set)
problems = []
for mod, p in files.items():
    text = open(p).read()
    lines = text.count("\n")
    if lines > 800 and "snapshots" not in p:
        problems.append(f"{os.path.relpath(p, ROOT)}: {lines} lines (over 800)")
    if not text.lstrip().startswith("//!"):
        problems.append(f"{os.path.relpath(p, ROOT)}: no //! opening comment")
    body = strip_tests(re.sub(r"(?m)^\s*//.*$", "", text))
    for m in re.finditer(r"\buse\s+((?:crate|super|self)(?:::\w+)*)(?:::\{([^;]*)\})?", body):
        base = m.group(1)
        targets = [base]
        if m.group(2):
            for item in re.split(r",\s*", m.group(2)):
                item = item.strip().split(" as ")[0].split("::{")[0]
                if item and item != "self":
                    targets.append(base + "::" + item)
        for t in targets:
            r = resolve(mod, t)
            if r and r != mod:
                edges[mod].add(r)
    for m in re.finditer(r"\b(crate(?:::\w+)+)", body):
        r = resolve(mod, m.group(1))
        if r and r != mod:
            edges[mod].add(r)

for mod, tos in edges.items():
    if mod[:1] == ("engine",):
        for t in tos:
            if t[:1] in (("cli",), ("tui",), ("server",)):
                problems.append(f"engine file {'/'.join(mod)} imports {'::'.join(t)}")

def is_ancestor(a, b):
    return len(a) < len(b) and b[: len(a)] == a

for top in ("engine", "server"):
    nodes = [m for m in files if m[:1] == (top,)]
    # Edges from a parent module to its own children are declarations and re-exports, not imports of a peer.
    g = {m: {t for t in edges[m] if t[:1] == (top,) and not is_ancestor(m, t)} for m in nodes}
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)
    for v in nodes:
        if v not in index:
            visit(v)
    for c in sccs:
        problems.append(f"import cycle in {top}: " + " <-> ".join("/".join(x) for x in sorted(c)))

# The README's tree map names every file.
readme = open(os.path.join(ROOT, "..", "README.md")).read()
named = set()
if "### Tree map" in readme:
    block = readme.split("### Tree map", 1)[1].split("```", 2)[1]
    stack = []  # (indent, dir)
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        base = stack[-1][1] if stack else ""
        for name in [n.strip() for n in head.split(",")]:
            path = name if indent == 0 else base + name
            if name.endswith("/"):
                stack.append((indent, path))
            else:
                named.add(path)
else:
    problems.append("README.md has no '### Tree map' section")
for mod, p in files.items():
    rel = "src/" + os.path.relpath(p, ROOT)
    if rel not in named:
        problems.append(f"{rel} is not in the README's tree map")

for p in problems:
    print(p)
print(f"{len(files)} files checked, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
