"""``manifest.json`` of an artifact folder: provenance, quant settings, checksums and check results.

Schema ``slmkit.manifest/1``::

    {"schema": "slmkit.manifest/1", "slmkit_version": "...", "updated": "ISO time",
     "source": {"name", "path", "sha256", "shape": {...}},
     "artifacts": {"<file name>": {"format", "quant", "bytes", "sha256", "bits_per_weight", ...}},
     "checks": {"<format>": {...}}}

Artifacts are keyed by file name, so quantizing more types into the same folder adds entries; an
entry whose file is gone is dropped on every write, so the manifest only describes files that exist.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from slmkit.version import __version__
from slmkit.files import sha256_file, write_text_atomic
from slmkit.errors import SlmkitError
from slmkit.model_folder import ModelFolder

SCHEMA = "slmkit.manifest/1"
MANIFEST = "manifest.json"


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SlmkitError(f"{path}: corrupt manifest (not JSON)") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SlmkitError(f"{path}: not an slmkit manifest (schema {SCHEMA} expected)")
    check_entries(path, data)
    return data


# What every artifact entry holds, with its type: the loader and bench read these.
ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {"format": str, "quant": str, "bytes": int, "sha256": str}


def check_entries(path: Path, data: dict) -> None:
    """A hand-edited or damaged manifest is one clear error naming the entry and field, not a KeyError."""
    artifacts = data.get("artifacts", {})
    if not isinstance(artifacts, dict):
        raise SlmkitError(f"{path}: 'artifacts' must map file names to entries")
    for name, entry in artifacts.items():
        if not isinstance(entry, dict):
            raise SlmkitError(f"{path}: artifact {name!r} is not an entry (an object with {', '.join(ENTRY_FIELDS)})")
        for key, kind in ENTRY_FIELDS.items():
            if key not in entry:
                raise SlmkitError(f"{path}: artifact {name!r} lacks {key!r}")
            if not isinstance(entry[key], kind) or isinstance(entry[key], bool):
                raise SlmkitError(f"{path}: artifact {name!r} has a {key!r} of the wrong type")
    if "source" in data and not isinstance(data["source"], dict):
        raise SlmkitError(f"{path}: 'source' must be an object")


def verify_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256, checked against the one its manifest records (one clear error naming the file)."""
    actual = sha256_file(path)
    if actual != expected:
        raise SlmkitError(f"{path}: sha256 does not match its manifest (corrupt or modified file; "
                          "--no-verify / verify=False skips this check)")
    return actual


def entry_for(path: Path) -> dict | None:
    """A file's entry in the manifest beside it (None when no manifest there lists it)."""
    path = Path(path)
    if not (path.parent / MANIFEST).is_file():
        return None
    return read_manifest(path.parent).get("artifacts", {}).get(path.name)


def verify_artifact(path: Path, entry: dict) -> str:
    """Check an artifact against its manifest entry: its sha256 and, for ONNX weights kept beside it
    (``<file>.data``), that file's too. Returns the artifact file's sha256."""
    actual = verify_sha256(path, entry.get("sha256"))
    if entry.get("external_data"):
        data = Path(path).with_name(entry["external_data"])
        if not data.is_file():
            raise SlmkitError(f"{data}: the external data its manifest lists is missing")
        verify_sha256(data, entry.get("external_data_sha256"))
    return actual


def update_manifest(folder: Path, source: ModelFolder, artifacts: dict[str, dict], checks: dict[str, dict]) -> dict:
    """Merge new artifact entries and check results into the folder's manifest and write it atomically."""
    folder = Path(folder)
    old = read_manifest(folder)
    src = {"name": source.name, "path": str(source.path.resolve()), "sha256": source.sha256(),
           "weights": source.weights.name, "shape": dataclasses.asdict(source.shape)}
    if old.get("source", {}).get("sha256") not in (None, src["sha256"]):
        old = {}  # a different model: its entries no longer describe this folder's source
    merged = {**old.get("artifacts", {}), **artifacts}
    merged = {name: entry for name, entry in merged.items() if (folder / name).is_file()}
    data = {"schema": SCHEMA, "slmkit_version": __version__,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": src,
            "artifacts": dict(sorted(merged.items())), "checks": {**old.get("checks", {}), **checks}}
    write_text_atomic(folder / MANIFEST, json.dumps(data, indent=2) + "\n")
    return data
