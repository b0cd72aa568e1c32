#!/usr/bin/env python3
"""Fails when a function outside tests is longer than the limit (80 lines).

A function that does not fit on a screen does more than one job; this check
keeps them found. Test code (tests/ folders, `tests.rs` files and
`#[cfg(test)]` modules) is not measured.

Usage: scripts/check-function-length.py [--max N] DIR...
"""
import os
import re
import sys

FN_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+(\w+)")


def strip(line, state):
    """The line without strings, chars and comments; state carries a block
    comment or a raw string across lines."""
    out, i = [], 0
    while i < len(line):
        if state.get("block"):
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"] = False
            i = j + 2
            continue
        if state.get("raw"):
            j = line.find(state["raw"], i)
            if j < 0:
                return "".join(out)
            i = j + len(state["raw"])
            state["raw"] = None
            continue
        if state.get("str"):
            if line[i] == "\\":
                i += 2
                continue
            if line[i] == '"':
                state["str"] = False
            i += 1
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        m = re.match(r'b?r(#*)"', line[i:])
        if m:
            state["raw"] = '"' + m.group(1)
            i += m.end()
            continue
        if c == '"':
            state["str"] = True
            i += 1
            continue
        m = re.match(r"b?'(\\.|[^\\'])'", line[i:])
        if m:
            i += m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def long_functions(path, limit):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    state, depth = {}, 0
    stack = []  # (name, start line, depth at which its body opened)
    pending = None
    test_depth = None
    cfg_test = False
    found = []
    for no, raw in enumerate(lines, 1):
        code = strip(raw, state)
        if re.match(r"\s*#\[cfg\(test\)\]", raw):
            cfg_test = True
        m = FN_RE.match(code)
        if m and test_depth is None:
            pending = (m.group(1), no)
        if cfg_test and re.match(r"\s*(pub\s+)?mod\s+\w+\s*\{", code):
            test_depth = depth
            cfg_test = False
        for ch in code:
            if ch == "{":
                if pending:
                    stack.append((pending[0], pending[1], depth))
                    pending = None
                depth += 1
            elif ch == "}":
                depth -= 1
                if stack and stack[-1][2] == depth:
                    name, start, _ = stack.pop()
                    if no - start + 1 > limit:
                        found.append((no - start + 1, name, start))
                if test_depth is not None and depth == test_depth:
                    test_depth = None
            elif ch == ";" and pending:
                pending = None  # a declaration without a body
    return found


def main():
    args = sys.argv[1:]
    limit = 80
    if args[:1] == ["--max"]:
        limit, args = int(args[1]), args[2:]
    bad = []
    for top in args:
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d not in ("tests", "target")]
            for f in sorted(files):
                if f.endswith(".rs") and f != "tests.rs":
                    path = os.path.join(root, f)
                    bad += [(n, name, path, start) for n, name, start in long_functions(path, limit)]
    for n, name, path, start in sorted(bad, reverse=True):
        print(f"{path}:{start}: fn {name} is {n} lines (limit {limit})")
    if bad:
        sys.exit(1)
    print(f"no function over {limit} lines in {', '.join(args)}")


if __name__ == "__main__":
    main()
