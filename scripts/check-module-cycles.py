#!/usr/bin/env python3
"""Fails when modules of a crate depend on each other in a cycle.

At every level of a crate's module tree, sibling modules form a graph: A -> B
when code anywhere inside A names something inside B (`use crate::b::…`,
`super::b::…`, `crate::b::x(…)`). A child naming its parent, or a parent its
child, is how Rust modules nest and does not count. Any cycle among siblings
is printed with the references that make it, and the exit status is 1.

Usage: scripts/check-module-cycles.py CRATE_SRC_DIR...   (e.g. agent/src)
"""
import os
import re
import sys

PATH_RE = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
USE_RE = re.compile(r"\buse\s+((?:crate|super|self)\b[^;]*);", re.S)


def modules(src):
    """Module path (tuple) -> file, for every .rs file under src."""
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)[:-3].split(os.sep)
            if rel[-1] == "mod" or (len(rel) == 1 and rel[0] in ("lib", "main")):
                rel = rel[:-1]
            if rel and rel[0] == "bin":
                continue
            mods[tuple(rel)] = os.path.join(root, f)
    return mods


def expand_use(tree):
    """`a::{b, c::{d}}` -> ["a::b", "a::c::d"]."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, s):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for p in filter(None, parts):
            if "{" in p:
                head, rest = p.split("{", 1)
                walk(prefix + head, rest[: rest.rfind("}")])
            else:
                out.append(prefix + p.split(" as ")[0])

    walk("", tree)
    return out


def resolve(here, path, mods):
    """The module (tuple) a `crate::`/`super::`/`self::` path lands in."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, parts = (), parts[1:]
    else:
        base = list(here)
        while parts and parts[0] in ("super", "self"):
            if parts.pop(0) == "super":
                base = base[:-1]
        base = tuple(base)
    best = base
    for i in range(1, len(parts) + 1):
        cand = base + tuple(parts[:i])
        if cand in mods:
            best = cand
    return best


def sibling_edge(a, b):
    """(level, from, to) when a and b are in different sibling subtrees."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    if n == len(a) or n == len(b):
        return None  # one contains the other: parent and child
    return a[:n], a[n], b[n]


def edges(mods):
    found = {}
    for here, path in mods.items():
        with open(path, encoding="utf-8") as f:
            text = re.sub(r"//[^\n]*", "", f.read())
        refs = [p for u in USE_RE.findall(text) for p in expand_use(u)]
        refs += [m.group(1) + m.group(2) for m in PATH_RE.finditer(text)]
        for ref in refs:
            target = resolve(here, ref, mods)
            e = sibling_edge(here, target)
            if e:
                found.setdefault(e, set()).add(f"{path}: {ref}")
    return found


def cycles(found):
    graph = {}
    for level, a, b in found:
        graph.setdefault(level, {}).setdefault(a, set()).add(b)
    for level, g in graph.items():
        seen, stack, on = set(), [], set()

        def dfs(n):
            seen.add(n)
            stack.append(n)
            on.add(n)
            for m in sorted(g.get(n, ())):
                if m in on:
                    yield level, stack[stack.index(m):] + [m]
                elif m not in seen:
                    yield from dfs(m)
            stack.pop()
            on.discard(n)

        for n in sorted(g):
            if n not in seen:
                yield from dfs(n)


def main():
    bad = 0
    for src in sys.argv[1:]:
        found = edges(modules(src))
        for level, ring in cycles(found):
            bad += 1
            where = "::".join(("crate",) + level)
            print(f"{src}: import cycle in {where}: {' -> '.join(ring)}")
            for a, b in zip(ring, ring[1:]):
                for ref in sorted(found[(level, a, b)])[:3]:
                    print(f"    {a} -> {b}: {ref}")
    if bad:
        sys.exit(1)
    print(f"no import cycles in {', '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
