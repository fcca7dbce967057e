"""Device profiles: data (``profiles.json``, extendable with a user file) that the runtime enforces.

A profile sets the thread count, a context cap, the batch size, a peak-memory budget, and which
artifact of a folder to prefer. Users add or override profiles with a JSON file named by the
``SLMKIT_PROFILES`` environment variable or passed to :func:`load_profiles`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from slmkit.errors import SlmkitError

BUILTIN = Path(__file__).with_name("profiles.json")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    threads: int | str = "physical"
    max_context: int | None = None
    batch: int = 1
    memory_budget_mb: float | None = None
    prefer: list[str] = field(default_factory=list)

    def thread_count(self) -> int:
        cores = physical_cores()
        return cores if self.threads == "physical" else max(1, min(int(self.threads), os.cpu_count() or 1))


def physical_cores() -> int:
    """Physical cores (hyper-threads counted once) from /proc/cpuinfo where it exists."""
    try:
        pairs = set()
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                phys = value.strip()
            elif key == "core id":
                core = value.strip()
                pairs.add((phys, core))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return os.cpu_count() or 1


def _read(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SlmkitError(f"{path}: unreadable profiles file ({type(e).__name__})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SlmkitError(f"{path}: a profiles file maps names to objects")
    return data


def load_profiles(extra: str | Path | None = None) -> dict[str, Profile]:
    """The built-in profiles, overridden by SLMKIT_PROFILES and then by ``extra``."""
    data = _read(BUILTIN)
    for path in (os.environ.get("SLMKIT_PROFILES"), extra):
        if path:
            for name, fields in _read(Path(path)).items():
                data[name] = {**data.get(name, {}), **fields}
    known = set(Profile.__dataclass_fields__) - {"name"}
    out = {}
    for name, fields in data.items():
        bad = set(fields) - known
        if bad:
            raise SlmkitError(f"profile {name!r}: unknown field {sorted(bad)[0]!r}; valid: {', '.join(sorted(known))}")
        out[name] = checked(Profile(name, **fields))
    return out


def checked(p: Profile) -> Profile:
    """The profile, or one clear error naming the field whose value cannot work."""
    def bad(field_: str, want: str) -> SlmkitError:
        return SlmkitError(f"profile {p.name!r}: {field_} must be {want}, got {getattr(p, field_)!r}")

    def whole(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 1

    if p.threads != "physical" and not whole(p.threads):
        raise bad("threads", '"physical" or a whole number of at least 1')
    if p.max_context is not None and not whole(p.max_context):
        raise bad("max_context", "null or a whole number of at least 1")
    if not whole(p.batch):
        raise bad("batch", "a whole number of at least 1")
    if p.memory_budget_mb is not None and (isinstance(p.memory_budget_mb, bool)
                                           or not isinstance(p.memory_budget_mb, (int, float))
                                           or not p.memory_budget_mb > 0):
        raise bad("memory_budget_mb", "null or a positive number")
    if not isinstance(p.prefer, list) or not all(isinstance(q, str) for q in p.prefer):
        raise bad("prefer", "a list of artifact types")
    if not isinstance(p.description, str):
        raise bad("description", "text")
    return p


def get_profile(name: str, extra: str | Path | None = None) -> Profile:
    profiles = load_profiles(extra)
    if name not in profiles:
        raise SlmkitError(f"unknown device profile {name!r}; valid: {', '.join(profiles)}")
    return profiles[name]
