"""Which package code a stage runs, and a version of it that ignores comments, docstrings and formatting.

Snakemake cannot see the modules that a `shell:` rule runs, so each rule carries the versions of its
stage's code as params: editing `modeling/knowledge_transfer.py` reruns train (and what follows),
not detect. Two choices make that precise:

- What a stage runs: the stage module and every package module it imports, transitively, read
  statically from `import` statements (nothing is imported; imports inside functions count, since
  stages import lazily; importing `a.b.c` runs `a/__init__.py` and `a/b/__init__.py` too). The
  configuration plumbing is left out and not followed (`PLUMBING`): the config dataclasses, the CLI,
  the stage declarations and the workflow helpers decide *which* settings a stage gets, and those
  settings are rule params of their own, so a new config key, a validation message or a CLI flag
  reruns nothing. That is also why `prompts.py` (imported by `config.py` to check templates) does not
  reach detect.
- A module's version: the SHA-256 of its normalised syntax tree (`ast.dump` without line numbers,
  docstrings and other bare string statements removed), so comments, docstrings, blank lines and
  reformatting change nothing; data files a module reads (`DATA_FILES`) count by their bytes.
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
# modules that route settings to stages without computing anything; their imports are not followed
PLUMBING = frozenset(
    f"{PACKAGE}.{name}" for name in ("__main__", "cli", "config", "code_version", "workflow", "stages.specs")
)
VERSION_LENGTH = 12


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
    """Source files of `module` and the package modules it imports, transitively, plus their data files.

    Plumbing modules (`PLUMBING`) are neither included nor followed.
    """
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
                prefix = ".".join(parts[:i])
                found = _module_file(prefix)
                if found is not None and found not in seen and prefix not in PLUMBING:
                    stack.append(found)
    for path in list(seen):
        for folder in DATA_FILES.get(path.relative_to(PACKAGE_DIR).as_posix(), ()):
            seen.update(p for p in (PACKAGE_DIR / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return sorted(seen)


class _StripDocstrings(ast.NodeTransformer):
    """Removes bare string statements (docstrings and string 'comments'): they never run."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                            and isinstance(s.value.value, str))]  # fmt: skip
            node.body = kept or [ast.Pass()]
        return node


def normalized_source(path: Path) -> bytes:
    """What of a file can change a computation: a .py file's syntax tree without docstrings, else its bytes."""
    if path.suffix != ".py":
        return path.read_bytes()
    tree = _StripDocstrings().visit(ast.parse(path.read_text(), filename=str(path)))
    return ast.dump(tree, include_attributes=False).encode()


@cache
def file_version(path: Path) -> str:
    return hashlib.sha256(normalized_source(path)).hexdigest()[:VERSION_LENGTH]


@cache
def module_versions(module: str) -> dict[str, str]:
    """{package-relative file: version} of everything `module` runs (see the module docstring)."""
    return {path.relative_to(PACKAGE_DIR).as_posix(): file_version(path) for path in module_closure(module)}


@cache
def stage_code_digest(module: str) -> str:
    """One short digest over `module_versions(module)`: the version of the code a stage runs."""
    digest = hashlib.sha256()
    for name, version in sorted(module_versions(module).items()):
        digest.update(f"{name}={version}\n".encode())
    return digest.hexdigest()[:16]
