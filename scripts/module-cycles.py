#!/usr/bin/env python3
"""Lists import circles between the modules of each crate in the workspace.

A module (one source file, or an inline `mod name { … }` block) depends on
another when it names a path into it: `use crate::a::b`, `super::x`,
`self::c::d`, or a child module by its bare name. Declaring a child
(`mod x;`) is not a dependency, nor is a re-export (`pub use a::B;`, the
crate's facade): a path through one counts as naming the module that defines
the item. An inline module counts as part of its file. `#[cfg(test)]`
modules are left out (a test may reach anything). Every strongly connected set of two or more modules is
a circle; the script prints each one and exits 1 if there is any.

Usage: scripts/module-cycles.py [CRATE_DIR ...]   (default: every workspace
member with a src/ directory).
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
# A path that starts at `crate`, `super` or `self` and goes on with `::`
# (a bare `pub(crate)` / `pub(super)` is a visibility, not a use).
PATH_RE = re.compile(r"\b((?:crate|super|self)(?:::(?:" + IDENT + r"|\{))+)")


def strip_comments_and_strings(text):
    """Blanks out comments, string and char literals (keeps line breaks)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        elif c == "'" and re.match(r"'\\[xu]", text[i:i + 3]):
            j = text.find("'", i + 1)
            out.append("' '")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.children = {}  # name -> Module
        self.text = ""  # this module's own text (inline children cut out)
        self.test = False


def parse_file(mod, crate_src):
    """Reads mod.file, fills mod.text and mod.children (recursively)."""
    with open(mod.file, encoding="utf-8") as f:
        text = strip_comments_and_strings(f.read())
    parse_text(mod, text, crate_src)


def child_file(mod, name, crate_src, path_attr):
    here = os.path.dirname(mod.file)
    if path_attr:
        return os.path.join(here, path_attr)
    base = os.path.basename(mod.file)
    if base in ("mod.rs", "lib.rs", "main.rs") or mod.path == ():
        d = here
    else:
        d = os.path.join(here, base[:-3])
    for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
        if os.path.exists(cand):
            return cand
    return None


MOD_RE = re.compile(
    r"((?:#\s*\[[^\]]*\]\s*)*)(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*([;{])"
)


def parse_text(mod, text, crate_src):
    own = []
    pos = 0
    while True:
        m = MOD_RE.search(text, pos)
        if not m:
            own.append(text[pos:])
            break
        own.append(text[pos:m.start()])
        attrs, name, kind = m.group(1), m.group(2), m.group(3)
        is_test = "cfg(test)" in attrs.replace(" ", "") or "cfg(all(test" in attrs.replace(" ", "")
        pa = re.search(r'path\s*=\s*"([^"]*)"', attrs)
        if kind == ";":
            pos = m.end()
            if is_test:
                continue
            f = child_file(mod, name, crate_src, pa.group(1) if pa else None)
            if f is None:
                continue
            child = Module(mod.path + (name,), f)
            mod.children[name] = child
            parse_file(child, crate_src)
        else:
            depth, j = 1, m.end()
            while j < len(text) and depth:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                j += 1
            pos = j
            if is_test:
                continue
            child = Module(mod.path + (name,), mod.file)
            mod.children[name] = child
            parse_text(child, text[m.end():j - 1], crate_src)
    mod.text = "".join(own)


def all_modules(root):
    out = [root]
    for c in root.children.values():
        out.extend(all_modules(c))
    return out


def expand_paths(text, start):
    """Yields every full path of a `use` tree or path starting at `start`."""
    # Read the path expression: segments, `::`, braces.
    i = start
    n = len(text)
    buf = []
    depth = 0
    while i < n:
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c in "_:*"):
            break
        buf.append(c)
        i += 1
    return expand_tree("".join(buf))


def expand_tree(s):
    s = re.sub(r"\s+as\s+" + IDENT, "", s)  # `a::B as C` names a::B
    s = re.sub(r"\s+", "", s)
    if "{" not in s:
        return [[p for p in s.split("::") if p and p != "*"]]
    k = s.index("{")
    prefix = [p for p in s[:k].split("::") if p]
    inner = s[k + 1:s.rindex("}")] if "}" in s else s[k + 1:]
    parts, depth, cur = [], 0, ""
    for c in inner:
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        cur += c
    parts.append(cur)
    out = []
    for p in parts:
        if not p:
            continue
        for t in expand_tree(p):
            out.append(prefix + t)
    return out


def resolve(mod_path, segs, root):
    """The module a path names (deepest module prefix), or None."""
    if not segs:
        return None
    path = list(mod_path)
    k = 0
    if segs[0] == "crate":
        path, k = [], 1
    elif segs[0] in ("super", "self"):
        while k < len(segs) and segs[k] in ("super", "self"):
            if segs[k] == "super":
                if not path:
                    return None
                path.pop()
            k += 1
    node = root
    for p in path:
        node = node.children.get(p)
        if node is None:
            return None
    for s in segs[k:]:
        if s in node.children:
            node = node.children[s]
        else:
            break
    return node


REEXPORT_RE = re.compile(r"\bpub(?:\s*\([^)]*\))?\s+use\s+([^;]*);")


def reexports(mod, root):
    """Names `mod` re-exports (`pub use a::B;`) → the module they come from."""
    out = {}
    for m in REEXPORT_RE.finditer(mod.text):
        for segs in expand_tree(m.group(1)):
            if not segs:
                continue
            first = segs[0]
            if first not in ("crate", "super", "self") and first not in mod.children:
                continue
            target = resolve(mod.path, segs if first in ("crate", "super", "self") else ["self"] + segs, root)
            if target is not None:
                out[segs[-1]] = target
    return out


def resolve_through(mod_path, segs, root, facades):
    """Like `resolve`, following a re-exported name to where it is defined."""
    target = resolve(mod_path, segs, root)
    if target is None:
        return None
    # A name the module re-exports stands for the module defining it.
    fac = facades.get(target.path, {})
    for s in segs[::-1]:
        if s in fac:
            return fac[s]
    return target


def edges_of(mod, root, facades):
    deps = set()
    text = REEXPORT_RE.sub("", mod.text)
    for m in PATH_RE.finditer(text):
        for segs in expand_paths(text, m.start()):
            target = resolve_through(mod.path, segs, root, facades)
            if target is not None:
                deps.add(target.path)
    # A child module named by its bare name (`child::x`, `use child::…`).
    for name in mod.children:
        if re.search(r"(?<![:\w])" + re.escape(name) + r"::", text):
            deps.add(mod.children[name].path)
    for segs_text in re.finditer(r"\buse\s+(" + IDENT + r")::", text):
        first = segs_text.group(1)
        if first in mod.children:
            for segs in expand_paths(text, segs_text.start(1)):
                t = resolve_through(mod.path, ["self"] + segs, root, facades)
                if t is not None:
                    deps.add(t.path)
    deps.discard(mod.path)
    return deps


def sccs(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def crate_roots(dirs):
    for d in dirs:
        for name in ("lib.rs", "main.rs"):
            f = os.path.join(d, "src", name)
            if os.path.exists(f):
                yield d, f


def members():
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"members\s*=\s*\[([^\]]*)\]", text)
    return [os.path.join(ROOT, x) for x in re.findall(r'"([^"]+)"', m.group(1))]


def main():
    dirs = sys.argv[1:] or members()
    found = 0
    for d, rootfile in crate_roots(dirs):
        root = Module((), rootfile)
        parse_file(root, os.path.dirname(rootfile))
        mods = all_modules(root)
        facades = {m.path: reexports(m, root) for m in mods}
        edges = {m.path: edges_of(m, root, facades) for m in mods}
        # One node per file: an inline module belongs to its file.
        file_of = {m.path: m.file for m in mods}
        node_of = {}
        for m in mods:
            k = m.path
            while len(k) and file_of.get(k[:-1]) == m.file:
                k = k[:-1]
            node_of[m.path] = k
        merged = {}
        for p, ds in edges.items():
            merged.setdefault(node_of[p], set()).update(node_of[d] for d in ds)
        for k, ds in merged.items():
            ds.discard(k)
        edges = merged
        mods = [m for m in mods if node_of[m.path] == m.path]
        for comp in sccs([m.path for m in mods], edges):
            found += 1
            names = sorted("::".join(("crate",) + p) for p in comp)
            rel = os.path.relpath(d, ROOT)
            print(f"{rel}: circle: " + " <-> ".join(names))
            for p in sorted(comp):
                into = sorted("::".join(("crate",) + q) for q in edges[p] if q in comp)
                print(f"    {'::'.join(('crate',) + p)} uses {', '.join(into)}")
    if found:
        print(f"{found} module circle(s)")
        return 1
    print("no module circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
