"""What made each artifact of a run, read from the artifacts themselves.

- detections HDF5 (infer): its attributes - split, checkpoint path, digest and iterations, the
  `infer` config section, the proposals and annotation it read;
- proposals HDF5 (detect): the detector's identity and config section;
- model.pt (train): training iterations, the clip / model / loss / train sections it was trained
  with, the knowledge bank's identity (path, digest, CLIP model), the image preprocessing;
- losses.csv, metrics.csv, per_class_ap.csv, ablations.csv: size and digest;
- code: the digest of each stage's code (what the rules compare to decide reruns; the stages'
  files do not record it), the package version and the repository revision at figure time.

Every input also gets its SHA-256 prefix (`artifacts.file_digest`), so two reports can be compared.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hoi_pipeline import __version__
from hoi_pipeline.artifacts import RaggedH5, file_digest
from hoi_pipeline.report.tables import Table

BULKY_ATTRS = ("objects", "skipped_images", "schema_version")  # long lists, or nothing a reader needs
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ArtifactRecord:
    """One artifact: its path, the stage that wrote it, and facts about how."""

    path: str
    stage: str
    facts: dict[str, object] = field(default_factory=dict)

    def table(self) -> Table:
        return Table(("key", "value"), tuple((key, format_fact(value)) for key, value in self.facts.items()))

    def markdown(self) -> str:
        """A bullet per fact, values as code (paths, digests and JSON read best verbatim)."""
        return "".join(f"- {key}: `{format_fact(value)}`\n" for key, value in self.facts.items())


def format_fact(value: object) -> str:
    """Plain values as they are; mappings and lists as compact, key-sorted JSON."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return str(value)


def file_facts(path: Path) -> dict[str, object]:
    return {"sha256": file_digest(path), "bytes": path.stat().st_size}


def h5_record(path: Path, stage: str) -> ArtifactRecord:
    """A per-image HDF5 artifact (proposals, detections): its attributes, less the bulky ones."""
    attrs = RaggedH5(path).attrs
    facts = {key: value for key, value in attrs.items() if key not in BULKY_ATTRS and key != "stage"}
    return ArtifactRecord(str(path), str(attrs.get("stage", stage)), {**facts, **file_facts(path)})


def checkpoint_record(path: Path) -> ArtifactRecord:
    """The trained model's info (`checkpoints.TrainedModelInfo`), without its class lists."""
    from hoi_pipeline.checkpoints import MODEL_FORMAT, load_file

    info = load_file(path, MODEL_FORMAT).get("info", {})
    facts: dict[str, object] = {"iterations": info.get("iterations", "not recorded")}
    facts.update({name: section for name, section in info.get("config", {}).items()})
    for key in ("bank", "preprocessing"):
        if key in info:
            facts[key] = info[key]
    return ArtifactRecord(str(path), "train", {**facts, **file_facts(path)})


def plain_record(path: Path, stage: str, **facts: object) -> ArtifactRecord:
    return ArtifactRecord(str(path), stage, {**facts, **file_facts(path)})


def repository_revision(root: Path = PACKAGE_ROOT) -> str:
    """`git describe --always --dirty` of the checkout holding the package, or why there is none."""
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({type(error).__name__})"
    return result.stdout.strip() if result.returncode == 0 else "unknown (not a git checkout)"


def code_record(code_versions: Mapping[str, str]) -> ArtifactRecord:
    """Digests of the stages' code as the workflow passed them, the package version, the checkout's revision."""
    facts: dict[str, object] = {f"{stage} code digest": digest for stage, digest in code_versions.items()}
    facts["hoi_pipeline version"] = __version__
    facts["repository revision (when the figures were made)"] = repository_revision()
    return ArtifactRecord("hoi_pipeline", "code", facts)


def as_json(records: list[ArtifactRecord]) -> list[dict[str, object]]:
    return [{"path": r.path, "stage": r.stage, "facts": r.facts} for r in records]
