"""Print every module over 400 lines and every function over 60 lines under src/.

Usage: python .ci/sizes.py [src]   (the limits of issue 17: modules ~400, functions ~60)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MODULE_LIMIT = 400
FUNCTION_LIMIT = 60


def sizes(root: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    modules: list[tuple[str, int]] = []
    functions: list[tuple[str, int]] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        lines = text.count("\n")
        if lines > MODULE_LIMIT:
            modules.append((rel, lines))
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LIMIT:
                    functions.append((f"{rel}:{node.name}", length))
    return modules, functions


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    modules, functions = sizes(root)
    sys.stdout.write(f"modules > {MODULE_LIMIT} lines\n")
    for name, n in sorted(modules, key=lambda m: -m[1]):
        sys.stdout.write(f"  {n:5d}  {name}\n")
    sys.stdout.write(f"functions > {FUNCTION_LIMIT} lines\n")
    for name, n in sorted(functions, key=lambda f: -f[1]):
        sys.stdout.write(f"  {n:5d}  {name}\n")


if __name__ == "__main__":
    main()
