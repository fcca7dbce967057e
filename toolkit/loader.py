"""``slmkit.load``: one call from a path to a ready Runtime, under a device profile.

Accepts a ``.gguf`` file, an ``.onnx`` file, an artifact folder with its ``manifest.json`` (the profile
picks the artifact; its sha256 is checked against the manifest), or a Hugging Face GPT-2 folder (the
fp16 reference, which needs torch). Never imports torch for GGUF or ONNX artifacts. With no path and no
torch (a runtime-only install), the demo model runs from the Q8_0 GGUF shipped beside it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from slmkit.errors import SlmkitError
from slmkit.manifest import MANIFEST, entry_for, read_manifest, verify_artifact
from slmkit.memory import peak_rss_mb
from slmkit.model_folder import DEMO_ARTIFACTS
from slmkit.profiles import Profile, get_profile


def pick_artifact(folder: Path, profile: Profile) -> tuple[Path, dict]:
    """The artifact of a manifest folder that the profile prefers (then the smallest)."""
    manifest = read_manifest(folder)
    entries = {name: e for name, e in manifest.get("artifacts", {}).items() if (folder / name).is_file()}
    if not entries:
        raise SlmkitError(f"{folder}: the manifest lists no artifact that exists")
    rank = {q: i for i, q in enumerate(profile.prefer)}
    name = min(entries, key=lambda n: (rank.get(entries[n]["quant"], len(rank)), entries[n]["bytes"]))
    return folder / name, entries[name]


def reference_installed() -> bool:
    """Whether the fp16 reference can run (torch and transformers importable), without importing them."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
        return False


def load(path: str | Path | None = None, device: str = "cpu", threads: int | None = None,
         n_ctx: int | None = None, verify: bool = True, profiles_file: str | Path | None = None):
    """Open a model or artifact as a Runtime under the ``device`` profile (``cpu``, ``mobile``, ...)."""
    from slmkit.runtimes import open_runtime
    from slmkit.runtimes.sampling import is_whole_number

    if threads is not None and not (is_whole_number(threads) and threads >= 0):
        raise SlmkitError(f"threads must be a whole number >= 1 (0 or None: the profile's), got {threads!r}")
    profile = get_profile(device, profiles_file)
    target = Path(path) if path is not None else None
    fallback = None
    if target is None and not reference_installed() and (DEMO_ARTIFACTS / MANIFEST).is_file():
        target = DEMO_ARTIFACTS
        fallback = "torch is not installed: the demo model runs from its shipped artifact"
    entry = None
    if target is not None and target.is_dir() and (target / MANIFEST).is_file():
        target, entry = pick_artifact(target, profile)
    elif target is not None and target.is_dir() and not (target / "config.json").is_file():
        raise SlmkitError(f"{target}: neither an artifact folder (no {MANIFEST}) nor a Hugging Face model folder "
                          "(no config.json)")
    elif target is not None and target.is_file():
        entry = entry_for(target)
    actual = verify_artifact(target, entry) if verify and entry else None  # hashed once, handed to the backend
    cap = min((x for x in (n_ctx, profile.max_context) if x), default=None)
    rt = open_runtime(target, threads=threads or profile.thread_count(), n_ctx=cap, sha256=actual)
    peak_mb = peak_rss_mb()
    rt.info.update(profile=profile.name, batch=profile.batch, peak_rss_mb=round(peak_mb, 1),
                   sha256_verified=actual is not None)
    if fallback:
        rt.info["note"] = fallback
    if profile.memory_budget_mb and peak_mb > profile.memory_budget_mb:
        rt.info.setdefault("warnings", []).append(
            f"peak RSS {peak_mb:.0f} MiB exceeds the {profile.name} budget of {profile.memory_budget_mb:.0f} MiB")
    return rt
