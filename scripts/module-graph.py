#!/usr/bin/env python3
"""Draw the module graph of host/src at file granularity and check its shape.

Checks, each reported with counts:
  1. cycles      no import cycles between files (strongly connected components
                 of more than one file, with one example line per edge inside);
  2. layers      no import from a lower layer to a higher one (LAYERS below);
  3. size        no source file over MAX_LINES lines before its test module.

A file depends on another when it names a path into it: `crate::a::b::...`,
`super::...`, `self::...`, a child module (`child::...`), or a name that a
`use` brought in for a module (`use crate::store; ... store::codec::x()`),
in `use` items (grouped and nested braces too) and in code alike. A path
resolves to the file of its longest prefix that is a module; modules declared
inline (`mod tests { ... }`) belong to their file. `#[path]` files are not
followed. Comments and string literals are ignored.

Usage: scripts/module-graph.py [REPO] [--report-only] [--dot] [--examples N]
Exit status: 1 when a check fails (0 with --report-only or --dot).
Standard library only.
"""

import argparse
import bisect
import os
import re
import sys
from collections import defaultdict

# ---------------------------------------------------------------------------
# Layers: top-level module -> layer number. A file may use files of its own
# layer or lower ones, never higher ones. `None` exempts a module (test-only
# code). The binary's root (main.rs) is the key "main"; lib.rs only declares
# modules and is exempt. Adjust freely; every top-level module must be listed.
# ---------------------------------------------------------------------------
LAYERS = {
    # 0 - vocabulary: durations, sizes, rates as users write them; locks
    #     that survive a panic. No crate deps.
    "units": 0,
    "sync": 0,
    # 1 - pure building blocks on units: the injectable clock, cron/zoned
    #     schedules, token-bucket maths, and config (every default and how
    #     settings parse; the model reads JobDefaults from it).
    "clock": 1,
    "timing": 1,
    "throttle": 1,
    "config": 1,
    # 2 - the data model and its validation (jobs, runs, plugins, tenants).
    "model": 2,
    # 3 - leaf utilities with I/O but no domain state: store-writing thread
    #     lanes, data-dir permissions, outbound HTTP behind the SSRF wall,
    #     SMTP, the in-memory event bus.
    "lanes": 3,
    "permissions": 3,
    "outbound": 3,
    "mail": 3,
    "events": 3,
    # 4 - resources: persistence, the wasmtime sandbox, sealed secrets.
    "store": 4,
    "sandbox": 4,
    "vault": 4,
    # 5 - services over the resources: plugins (validate, compile, cache),
    #     tenants' quotas, tokens, metrics (they read store and sandbox state).
    "plugin": 5,
    "tenancy": 5,
    "auth": 5,
    "metrics": 5,
    "grant": 5,
    # The cluster's leases: who leads (the engine's loops wait on it); its
    # event log relayed to every node's streams.
    "cluster": 5,
    "relay": 5,
    # 6 - the engine: fire times, the run queue and its workers, and what
    #     reacts to runs (webhooks, digests, retention sweeps).
    "scheduler": 6,
    "executor": 6,
    "notify": 6,
    "summary": 6,
    "retention": 6,
    "jobs": 6,
    "failures": 6,
    "workflows": 6,
    # 7 - the HTTP surface: API handlers and the connection server.
    "api": 7,
    "server": 7,
    # 8 - wiring: `sandcron serve` assembles everything and runs it.
    "daemon": 8,
    # 9 - the command line on top: the typed HTTP client, the CLI, the binary.
    "client": 9,
    "cli": 9,
    "main": 9,
    # test-only modules may use anything.
    "proptests": None,
}

# Check 3: lines allowed before a file's inline `#[cfg(test)]` module.
MAX_LINES = 800

# The library crate's name, as the binary (main.rs) spells paths into it.
LIB_CRATE_NAME = "sandcron"

LIB_ROOT = "lib.rs"
BIN_ROOT = "main.rs"
BIN_PREFIX = "<main>"  # module-path prefix of the binary crate's modules


# ---------------------------------------------------------------------------
# Lexing: blank out comments and literals (keeping line breaks), then tokens.
# ---------------------------------------------------------------------------
RAW_STRING = re.compile(r'(?:br|cr|r)(#*)"')
TOKEN = re.compile(r"\$crate|(?:r#)?[A-Za-z_][A-Za-z0-9_]*|::|\S")


def _blank(text):
    return re.sub(r"[^\n]", " ", text)


def strip_comments_and_literals(text):
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(_blank(text[i:j]))
            i = j
            continue
        if c == "/" and text.startswith("/*", i):
            depth, j = 0, i
            while j < n:
                if text.startswith("/*", j):
                    depth += 1
                    j += 2
                elif text.startswith("*/", j):
                    depth -= 1
                    j += 2
                    if depth == 0:
                        break
                else:
                    j += 1
            out.append(_blank(text[i:j]))
            i = j
            continue
        if c in "bcr" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = RAW_STRING.match(text, i)
            if m:
                close = '"' + m.group(1)
                j = text.find(close, m.end())
                j = n if j < 0 else j + len(close)
                out.append(" " + _blank(text[i + 1 : j - 1]) + " ")
                i = j
                continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(" " + _blank(text[i + 1 : j - 1]) + " ")
            i = j
            continue
        if c == "'":
            # a char literal ('x', '\n', '\u{..}', '\'') or a lifetime/label.
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 3)
                j = n if j < 0 else j + 1
                out.append(_blank(text[i:j]))
                i = j
                continue
            if i + 2 < n and text[i + 2] == "'":
                out.append("   ")
                i += 3
                continue
        out.append(c)
        i += 1
    return "".join(out)


def tokenize(text):
    clean = strip_comments_and_literals(text)
    line_starts = [0] + [m.end() for m in re.finditer("\n", clean)]
    tokens = []
    for m in TOKEN.finditer(clean):
        value = m.group(0)
        if value.startswith("r#"):
            value = value[2:]
        tokens.append((value, bisect.bisect_right(line_starts, m.start())))
    return tokens


def is_ident(value):
    return value[:1].isalpha() or value[:1] == "_" or value == "$crate"


# ---------------------------------------------------------------------------
# Parsing one file: module declarations, use items and paths in code.
# ---------------------------------------------------------------------------
class Scope:
    """A module whose code sits in a file: the file's own, or an inline one."""

    def __init__(self, path, inline_names, is_test, depth):
        self.path = path  # module path, a tuple
        self.inline_names = inline_names  # inline modules from the file's root
        self.is_test = is_test
        self.depth = depth  # brace depth at which it opened


class ParsedFile:
    def __init__(self):
        self.file_mods = []  # (scope, name, is_test, line): `mod name;`
        self.inline_mods = []  # (scope, name, is_test)
        self.uses = []  # (scope, segments, alias, is_glob, line)
        self.paths = []  # (scope, segments, line)


def attributes_before(tokens, i):
    """The attribute token lists directly before tokens[i], skipping `pub(..)`."""
    j = i - 1
    if j >= 0 and tokens[j][0] == ")":
        depth = 0
        while j >= 0:
            if tokens[j][0] == ")":
                depth += 1
            elif tokens[j][0] == "(":
                depth -= 1
                if depth == 0:
                    break
            j -= 1
        j -= 1
    if j >= 0 and tokens[j][0] == "pub":
        j -= 1
    attrs = []
    while j >= 0 and tokens[j][0] == "]":
        depth, k = 0, j
        while k >= 0:
            if tokens[k][0] == "]":
                depth += 1
            elif tokens[k][0] == "[":
                depth -= 1
                if depth == 0:
                    break
            k -= 1
        attrs.append([t for t, _ in tokens[k + 1 : j]])
        j = k - 1
        if j >= 0 and tokens[j][0] == "!":
            j -= 1
        if j >= 0 and tokens[j][0] == "#":
            j -= 1
        else:
            break
    return attrs


def is_cfg_test(attrs):
    return any(a[:1] == ["cfg"] and "test" in a and "not" not in a for a in attrs)


def parse_use_tree(tokens, pos, prefix, out):
    """Parses one use tree at tokens[pos]; appends (segments, alias, glob, line)."""
    segments = list(prefix)
    if pos < len(tokens) and tokens[pos][0] == "::":
        segments.append("::")  # `use ::name` - an extern crate
        pos += 1
    while pos < len(tokens):
        value, line = tokens[pos]
        if value == "{":
            pos += 1
            while pos < len(tokens) and tokens[pos][0] not in ("}", ";"):
                pos = parse_use_tree(tokens, pos, segments, out)
                if pos < len(tokens) and tokens[pos][0] == ",":
                    pos += 1
            return pos + 1 if pos < len(tokens) and tokens[pos][0] == "}" else pos
        if value == "*":
            out.append((segments, None, True, line))
            return pos + 1
        if not is_ident(value):
            return pos
        segments.append(value)
        pos += 1
        if pos < len(tokens) and tokens[pos][0] == "::":
            pos += 1
            continue
        alias = None
        if pos + 1 < len(tokens) and tokens[pos][0] == "as":
            alias = tokens[pos + 1][0]
            pos += 2
        if segments[-1] == "self" and len(segments) > 1:
            segments = segments[:-1]
        out.append((segments, alias or segments[-1], False, line))
        return pos
    return pos


def parse_file(text, module_path, file_is_test):
    tokens = tokenize(text)
    parsed = ParsedFile()
    scopes = [Scope(module_path, (), file_is_test, 0)]
    depth = 0
    pending_inline = None
    i, n = 0, len(tokens)
    while i < n:
        value, line = tokens[i]
        previous = tokens[i - 1][0] if i else ""
        if value == "{":
            depth += 1
            if pending_inline is not None:
                name, is_test = pending_inline
                outer = scopes[-1]
                scopes.append(Scope(outer.path + (name,), outer.inline_names + (name,),
                                    outer.is_test or is_test, depth))
                pending_inline = None
        elif value == "}":
            if len(scopes) > 1 and scopes[-1].depth == depth:
                scopes.pop()
            depth -= 1
        elif value == "mod" and previous != "::" and i + 2 < n and is_ident(tokens[i + 1][0]):
            name, after = tokens[i + 1][0], tokens[i + 2][0]
            is_test = is_cfg_test(attributes_before(tokens, i))
            if after == ";":
                parsed.file_mods.append((scopes[-1], name, is_test, line))
            elif after == "{":
                parsed.inline_mods.append((scopes[-1], name, is_test))
                pending_inline = (name, is_test)
            i += 2
            continue
        elif value == "use" and previous != "::":
            found = []
            pos = parse_use_tree(tokens, i + 1, [], found)
            for segments, alias, glob, use_line in found:
                parsed.uses.append((scopes[-1], segments, alias, glob, use_line))
            while pos < n and tokens[pos][0] != ";":
                pos += 1
            i = pos + 1
            continue
        elif is_ident(value) and previous != "::" and i + 2 < n and tokens[i + 1][0] == "::" \
                and is_ident(tokens[i + 2][0]):
            segments = [value]
            pos = i + 1
            while pos + 1 < n and tokens[pos][0] == "::" and is_ident(tokens[pos + 1][0]):
                segments.append(tokens[pos + 1][0])
                pos += 2
            parsed.paths.append((scopes[-1], segments, line))
            i = pos
            continue
        i += 1
    return parsed


# ---------------------------------------------------------------------------
# The crate: walk `mod` declarations from the roots, then resolve references.
# ---------------------------------------------------------------------------
class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # rel file -> ParsedFile
        self.lines = {}  # rel file -> list of source lines
        self.module_file = {}  # module path -> rel file
        self.file_module = {}  # rel file -> module path
        self.parent = {}  # rel file -> rel file that declared it
        self.test_files = set()  # files declared under #[cfg(test)]
        self.children = defaultdict(set)  # module path -> child names
        self.problems = []  # modules whose file is missing or ambiguous
        for root, prefix in ((LIB_ROOT, ()), (BIN_ROOT, (BIN_PREFIX,))):
            if os.path.exists(os.path.join(src, root)):
                self._load(root, prefix, None, False)

    def _child_dir(self, rel, inline_names):
        base = os.path.basename(rel)
        directory = os.path.dirname(rel)
        if base not in ("lib.rs", "main.rs", "mod.rs"):
            directory = os.path.join(directory, base[:-3])
        return os.path.join(directory, *inline_names)

    def _load(self, rel, module_path, parent, is_test):
        with open(os.path.join(self.src, rel), encoding="utf-8") as handle:
            text = handle.read()
        self.lines[rel] = text.splitlines()
        self.module_file[module_path] = rel
        self.file_module[rel] = module_path
        if parent is not None:
            self.parent[rel] = parent
        if is_test:
            self.test_files.add(rel)
        parsed = parse_file(text, module_path, is_test)
        self.files[rel] = parsed
        for scope, name, _ in parsed.inline_mods:
            self.module_file[scope.path + (name,)] = rel
            self.children[scope.path].add(name)
        for scope, name, mod_is_test, line in parsed.file_mods:
            self.children[scope.path].add(name)
            directory = self._child_dir(rel, scope.inline_names)
            candidates = [os.path.join(directory, name + ".rs"),
                          os.path.join(directory, name, "mod.rs")]
            present = [c for c in candidates if os.path.exists(os.path.join(self.src, c))]
            if len(present) != 1:
                self.problems.append(f"{rel}:{line}: mod {name}; -> "
                                     f"{'both ' if present else 'neither '}{' / '.join(candidates)}")
                continue
            self._load(os.path.normpath(present[0]), scope.path + (name,), rel,
                       scope.is_test or mod_is_test)

    def absolute(self, rel, scope, segments, aliases):
        """The crate-absolute path `segments` names, or None when it leaves the crate."""
        first = segments[0]
        is_bin = self.file_module[rel][:1] == (BIN_PREFIX,)
        if first in ("crate", "$crate"):
            base, rest = ((BIN_PREFIX,) if is_bin else ()), segments[1:]
        elif first == LIB_CRATE_NAME and is_bin:
            base, rest = (), segments[1:]
        elif first == "super":
            base, k = scope.path, 0
            while k < len(segments) and segments[k] == "super":
                base, k = base[:-1], k + 1
            rest = segments[k:]
        elif first == "self":
            base, rest = scope.path, segments[1:]
        elif first in self.children.get(scope.path, ()):
            base, rest = scope.path + (first,), segments[1:]
        elif (scope.path, first) in aliases:
            base, rest = aliases[(scope.path, first)], segments[1:]
        else:
            return None
        return tuple(base) + tuple(rest)

    def resolve(self, rel, scope, segments, aliases):
        """The module (longest prefix of the absolute path that is one), or None."""
        full = self.absolute(rel, scope, segments, aliases)
        if full is None:
            return None
        for cut in range(len(full), -1, -1):
            if full[:cut] in self.module_file:
                return full[:cut]
        return None

    def module_aliases(self):
        """(scope path, name) -> module path: the names `use` items give modules.

        A glob (`use super::*`, `use crate::a::*`) brings in the named module's
        child modules and its own module aliases too, so `use super::*` in a
        child or a test module sees what its parent imported.
        """
        aliases = {}
        for _ in range(4):  # passes let aliases build on aliases and globs chain
            before = len(aliases)
            for rel, parsed in self.files.items():
                for scope, segments, alias, glob, _ in parsed.uses:
                    full = self.absolute(rel, scope, segments, aliases)
                    if full is None or full not in self.module_file:
                        continue
                    if not glob:
                        if alias != "_":
                            aliases.setdefault((scope.path, alias), full)
                        continue
                    for child in self.children.get(full, ()):
                        aliases.setdefault((scope.path, child), full + (child,))
                    for (owner, name), target in list(aliases.items()):
                        if owner == full:
                            aliases.setdefault((scope.path, name), target)
            if len(aliases) == before:
                break
        return aliases

    def references(self):
        """Yields (from file, to file, line, example text, in test code)."""
        aliases = self.module_aliases()
        for rel, parsed in self.files.items():
            for scope, segments, alias, glob, line in parsed.uses:
                target = self.resolve(rel, scope, segments, aliases)
                if target is not None:
                    shown = "::".join(segments) + ("::*" if glob else "")
                    if alias and alias != segments[-1]:
                        shown += f" as {alias}"
                    yield rel, self.module_file[target], line, f"use {shown}", scope.is_test
            for scope, segments, line in parsed.paths:
                target = self.resolve(rel, scope, segments, aliases)
                if target is not None:
                    source_line = self.lines[rel][line - 1].strip()
                    if len(source_line) > 100:
                        source_line = source_line[:97] + "..."
                    yield rel, self.module_file[target], line, source_line, scope.is_test


def top_module(crate, rel):
    path = crate.file_module[rel]
    if path[:1] == (BIN_PREFIX,):
        return "main"
    return path[0] if path else None  # None: lib.rs, the crate root


# ---------------------------------------------------------------------------
# Graph algorithms and the checks.
# ---------------------------------------------------------------------------
def strongly_connected(nodes, edges):
    """Tarjan's algorithm, iterative. edges: node -> iterable of nodes."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter[0]
                    counter[0] += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return [c for c in result if len(c) > 1]


def build_graph(crate):
    """(from, to) -> list of (line, text, in test code), minus ignored edges."""
    graph = defaultdict(list)
    for source, target, line, text, in_test in crate.references():
        if source == target:
            continue
        if crate.parent.get(source) == target and (
                source in crate.test_files or os.path.basename(source) == "tests.rs"):
            continue  # a test module using its parent
        graph[(source, target)].append((line, text, in_test))
    for examples in graph.values():
        examples.sort()
    return graph


def is_parent_child(crate, edge):
    source, target = edge
    return crate.parent.get(source) == target or crate.parent.get(target) == source


def describe(source, examples, limit):
    shown = []
    for line, text, in_test in examples[:limit]:
        shown.append(f"      {source}:{line}: {text}{'  [test]' if in_test else ''}")
    if len(examples) > limit:
        shown.append(f"      ... and {len(examples) - limit} more reference(s)")
    return shown


def check_cycles(crate, graph, out, limit):
    nodes = set(crate.files)
    all_edges, no_family = defaultdict(set), defaultdict(set)
    for source, target in graph:
        all_edges[source].add(target)
        if not is_parent_child(crate, (source, target)):
            no_family[source].add(target)
    components = strongly_connected(nodes, all_edges)
    without = strongly_connected(nodes, no_family)
    prod_edges = defaultdict(set)
    for (source, target), examples in graph.items():
        if not all(ex[2] for ex in examples):
            prod_edges[source].add(target)
    production = strongly_connected(nodes, prod_edges)

    def files_in(comps):
        return sum(len(c) for c in comps)

    out.append("== 1. Cycles (strongly connected components of more than one file)")
    out.append(f"  counting every edge:                {len(components)} cycle(s), "
               f"{files_in(components)} files")
    out.append(f"  without parent<->child edges:       {len(without)} cycle(s), "
               f"{files_in(without)} files")
    out.append(f"  without edges only from test code:  {len(production)} cycle(s), "
               f"{files_in(production)} files")
    for number, component in enumerate(components, 1):
        members = set(component)
        family_only = not any(set(c) & members for c in without)
        note = "  (only through parent<->child edges)" if family_only else ""
        out.append(f"  cycle {number}: {len(component)} files{note}")
        for rel in component:
            out.append(f"    {rel}")
        out.append("    edges inside:")
        for source in component:
            for target in sorted(all_edges[source] & members):
                examples = graph[(source, target)]
                tag = " [parent<->child]" if is_parent_child(crate, (source, target)) else ""
                out.append(f"    {source} -> {target}{tag}")
                out.extend(describe(source, examples, limit))
    if without:
        out.append("  components left without parent<->child edges:")
        for component in without:
            out.append("    " + ", ".join(component))
    out.append("")
    return not components


def check_layers(crate, graph, out, limit):
    unknown = sorted({m for rel in crate.files if (m := top_module(crate, rel)) is not None
                      and m not in LAYERS})
    violations = []
    for (source, target), examples in sorted(graph.items()):
        from_module, to_module = top_module(crate, source), top_module(crate, target)
        from_layer, to_layer = LAYERS.get(from_module), LAYERS.get(to_module)
        if from_layer is None or to_layer is None:
            continue
        if from_layer < to_layer:
            violations.append((source, target, from_module, to_module, from_layer, to_layer, examples))
    by_pair = defaultdict(int)
    for _, _, from_module, to_module, from_layer, to_layer, _ in violations:
        by_pair[(from_layer, from_module, to_layer, to_module)] += 1
    out.append(f"== 2. Layers: {len(violations)} violation(s) (file edges from a lower layer up), "
               f"{sum(len(v[6]) for v in violations)} reference(s)")
    if unknown:
        out.append(f"  top-level modules missing from LAYERS: {', '.join(unknown)}")
    if by_pair:
        out.append("  by module pair:")
        for (from_layer, from_module, to_layer, to_module), count in sorted(by_pair.items()):
            out.append(f"    {from_module} (L{from_layer}) -> {to_module} (L{to_layer}): "
                       f"{count} file edge(s)")
    for source, target, from_module, to_module, from_layer, to_layer, examples in violations:
        test_only = "  [test code only]" if all(ex[2] for ex in examples) else ""
        out.append(f"  {source} (L{from_layer}) -> {target} (L{to_layer}){test_only}")
        out.extend(describe(source, examples, limit))
    out.append("")
    return not violations and not unknown


def lines_before_tests(lines):
    """Lines before the first column-0 `#[cfg(test)]` opening an inline module."""
    for number, text in enumerate(lines):
        if not text.startswith("#[cfg(test)]"):
            continue
        for following in lines[number + 1 :]:
            stripped = following.strip()
            if stripped.startswith("#[") or not stripped:
                continue
            if re.match(r"(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", stripped):
                return number
            break  # `#[cfg(test)] mod tests;` or another item: keep counting
    return len(lines)


def check_sizes(crate, out):
    big = []
    for rel in sorted(crate.lines):
        count = lines_before_tests(crate.lines[rel])
        if count > MAX_LINES:
            big.append((count, rel, len(crate.lines[rel])))
    out.append(f"== 3. Size: {len(big)} file(s) over {MAX_LINES} lines before their test module")
    for count, rel, total in sorted(big, reverse=True):
        out.append(f"  {rel}: {count} lines ({total} with tests)")
    out.append("")
    return not big


def dot(crate, graph):
    components = strongly_connected(set(crate.files), {
        s: {t for (s2, t) in graph if s2 == s} for s in crate.files})
    in_cycle = {(s, t) for c in components for s in c for t in c if (s, t) in graph}
    lines = ["digraph modules {", "  rankdir=LR;", '  node [shape=box, fontsize=10];']
    by_module = defaultdict(list)
    for rel in sorted(crate.files):
        by_module[top_module(crate, rel)].append(rel)
    for module, files in sorted(by_module.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")):
        if module is None:
            lines += [f'  "{rel}";' for rel in files]
            continue
        layer = LAYERS.get(module)
        lines.append(f'  subgraph "cluster_{module}" {{')
        lines.append(f'    label="{module} (layer {layer})";')
        lines += [f'    "{rel}";' for rel in files]
        lines.append("  }")
    for (source, target), examples in sorted(graph.items()):
        attributes = [f'tooltip="{source}:{examples[0][0]}"']
        from_layer = LAYERS.get(top_module(crate, source))
        to_layer = LAYERS.get(top_module(crate, target))
        if from_layer is not None and to_layer is not None and from_layer < to_layer:
            attributes.append("color=red")
        styles = []
        if (source, target) in in_cycle:
            styles.append("bold")
        if all(ex[2] for ex in examples):
            styles.append("dashed")  # only test code makes this edge
        if styles:
            attributes.append(f'style="{",".join(styles)}"')
        if is_parent_child(crate, (source, target)):
            attributes.append("arrowhead=empty")
        lines.append(f'  "{source}" -> "{target}" [{", ".join(attributes)}];')
    lines.append("}")
    return "\n".join(lines)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", nargs="?", default=os.path.dirname(here),
                        help="repository root (default: the parent of this script's folder)")
    parser.add_argument("--src", default="host/src", help="crate source folder, relative to REPO")
    parser.add_argument("--report-only", action="store_true", help="always exit 0")
    parser.add_argument("--dot", action="store_true", help="print the file graph as Graphviz dot")
    parser.add_argument("--examples", type=int, default=3, metavar="N",
                        help="example lines shown per edge (default 3)")
    args = parser.parse_args()

    repo = os.path.abspath(args.repo)
    src = os.path.join(repo, args.src)
    crate = Crate(src)
    graph = build_graph(crate)
    if args.dot:
        print(dot(crate, graph))
        return 0

    out = [f"Module graph of {os.path.relpath(src, os.getcwd()) if src.startswith(os.getcwd()) else src}: "
           f"{len(crate.files)} files, {len(graph)} file edges "
           f"({sum(1 for e in graph if is_parent_child(crate, e))} parent<->child, "
           f"{sum(1 for ex in graph.values() if all(x[2] for x in ex))} from test code only)", ""]
    unreached = sorted(
        os.path.relpath(os.path.join(d, f), src) for d, _, fs in os.walk(src) for f in fs
        if f.endswith(".rs") and os.path.relpath(os.path.join(d, f), src) not in crate.files)
    if unreached or crate.problems:
        out.append("Notes:")
        out += [f"  not in the module tree (ignored): {rel}" for rel in unreached]
        out += [f"  unresolved module: {p}" for p in crate.problems]
        out.append("")
    results = {
        "cycles": check_cycles(crate, graph, out, args.examples),
        "layers": check_layers(crate, graph, out, args.examples),
        "size": check_sizes(crate, out),
    }
    failed = [name for name, ok in results.items() if not ok]
    out.append("== Summary: " + ", ".join(f"{name} {'ok' if ok else 'FAILED'}"
                                         for name, ok in results.items()))
    print("\n".join(out))
    return 0 if args.report_only or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
