"""Which package code a stage runs, and a digest of it.

Snakemake cannot see the modules that a `shell:` rule runs, so each rule carries the digest of
its stage's code as a param: editing `modeling/knowledge_transfer.py` reruns train, infer and
evaluate's inputs, but not detect. The module graph is read statically from `import`
statements (AST, nothing is imported), following only modules of this package; imports inside
functions count too, since stages import lazily.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "hoi_pipeline"
PACKAGE_DIR = Path(__file__).resolve().parent
# data files that a module reads at run time (they change what the stage computes too)
DATA_FILES = {"modeling/clip_loading.py": ("model_configs",)}


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Package modules imported anywhere in a file (absolute and relative imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {name for name in found if name.split(".")[0] == PACKAGE}


def module_closure(module: str) -> list[Path]:
    """Source files of `module` and every package module it imports, transitively, plus their data files."""
    start = _module_file(module)
    if start is None:
        raise ValueError(f"{module}: not a module of {PACKAGE}")
    seen: set[Path] = set()
    stack = [start]
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                found = _module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    stack.append(found)
    for path in list(seen):
        for folder in DATA_FILES.get(path.relative_to(PACKAGE_DIR).as_posix(), ()):
            seen.update(p for p in (PACKAGE_DIR / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(seen)


@cache
def stage_code_digest(module: str) -> str:
    """Short SHA-256 over the source of a stage module's import closure (paths and contents)."""
    digest = hashlib.sha256()
    for path in module_closure(module):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
