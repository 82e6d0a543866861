#!/usr/bin/env python3
"""Checks the architecture's two rules that the compiler does not:

1. Dependencies point one way: `worker` never depends on `api` (nor on the HTTP stack), and
   `engine` on neither; read from `cargo tree`.
2. No import cycle between the top-level modules of any crate: a module that imports another
   (`crate::other`) is never imported back by it, directly or through others.

Exits non-zero, naming the offence, when either breaks.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "worker": {"api", "actix-web", "utoipa", "utoipa-swagger-ui", "utoipa-actix-web"},
    "engine": {"api", "worker", "actix-web", "utoipa", "utoipa-swagger-ui", "utoipa-actix-web"},
}


def check_dependencies():
    failures = []
    for package, forbidden in FORBIDDEN.items():
        # `cargo tree -p` resolves features as when the package is built alone.
        tree = subprocess.run(["cargo", "tree", "-p", package, "-e", "normal", "--prefix", "none", "--locked"],
                              cwd=ROOT, check=True, capture_output=True, text=True).stdout
        found = {line.split(" ")[0] for line in tree.splitlines() if line} & forbidden
        if found:
            failures.append(f"{package} depends on {', '.join(sorted(found))}")
    return failures


def top_module(src, path):
    parts = path.relative_to(src).with_suffix("").parts
    return None if parts in (("lib",), ("main",)) else parts[0]


def imports(text):
    text = text.split("#[cfg(test)]\nmod tests")[0]
    names = set(re.findall(r"\bcrate::(\w+)", text))
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
        names.update(re.findall(r"(?:^|,)\s*(\w+)", group))
    return names


def check_cycles():
    failures = []
    for manifest in sorted(ROOT.glob("*/Cargo.toml")):
        src = manifest.parent / "src"
        if not src.is_dir():
            continue
        edges = {}
        for path in src.rglob("*.rs"):
            module = top_module(src, path)
            if module:
                edges.setdefault(module, set()).update(imports(path.read_text()) - {module})
        for start in edges:
            # A path from one of start's imports back to start is a cycle.
            todo, seen = [(n, [start, n]) for n in edges[start]], set()
            while todo:
                node, trail = todo.pop()
                if node == start:
                    failures.append(f"{manifest.parent.name}: import cycle {' -> '.join(trail)}")
                    break
                if node in seen:
                    continue
                seen.add(node)
                todo.extend((n, trail + [n]) for n in edges.get(node, ()))
    return failures


def main():
    failures = check_dependencies() + check_cycles()
    for failure in failures:
        print(f"layers: {failure}", file=sys.stderr)
    if not failures:
        print("layers: worker and engine stay off the HTTP stack; no crate has an import cycle")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
