"""No module imports from a layer above it (lazy imports inside functions count too).

Layers, bottom up: the core (file formats, tokenizer, prompt format, metrics, workload), runtimes and
the loader, converters, benchmarks, the demo model's data / training / evaluation, the HTTP server, and
the front ends (CLI, the package's ``load``). The development campaigns (devtools/) are not part of the package.
Checked by breaking it: an import of ``slmkit.demo.dataset`` put back into ``converters/checks.py``
fails here.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"toolkit": "slmkit", "toolkit/demo": "slmkit.demo", "runtimes": "slmkit.runtimes",
            "converters": "slmkit.converters", "benchmarks": "slmkit.benchmarks", "server": "slmkit.server"}
LAYERS = ["core", "runtimes", "converters", "benchmarks", "demo", "server", "front"]


def layer(module: str) -> str:
    if module in ("slmkit", "slmkit.cli", "slmkit.__main__"):
        return "front"
    if module == "slmkit.loader" or module.startswith("slmkit.runtimes"):
        return "runtimes"
    for name in ("converters", "benchmarks", "demo", "server"):
        if module.startswith(f"slmkit.{name}"):
            return name
    return "core"


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for f in (ROOT / folder).glob("*.py"):
            out[package if f.stem == "__init__" else f"{package}.{f.stem}"] = f
    return out


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("slmkit"):
            found |= {node.module} if node.module != "slmkit" else {f"slmkit.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("slmkit")}
    return found


def test_every_package_module_is_in_a_layer_and_none_imports_upwards():
    mods = modules()
    assert len(mods) > 40 and {layer(m) for m in mods} == set(LAYERS)
    upward = []
    for name, path in sorted(mods.items()):
        for target in sorted(imports(path)):
            target = target if target in mods or target == "slmkit" else target.rsplit(".", 1)[0]
            if LAYERS.index(layer(target)) > LAYERS.index(layer(name)):
                upward.append(f"{name} ({layer(name)}) imports {target} ({layer(target)})")
    assert not upward, "\n".join(upward)


def test_the_package_does_not_import_the_development_campaigns():
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            assert not any(n.split(".")[0] in ("devtools", "tests") for n in names), name
