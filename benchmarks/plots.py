"""PNG plots of a bench report: decode latency vs size and quality drift vs size, one series per format."""
from __future__ import annotations

from pathlib import Path

from slmkit.errors import SlmkitError
from slmkit.benchmarks.schema import Report
from slmkit.files import atomic_path

STYLE = {"hf": ("*", "tab:gray"), "gguf": ("o", "tab:blue"), "onnx": ("s", "tab:orange")}


def _scatter(report: Report, path: Path, y_label: str, get_y, log_y: bool = False) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    rows = [r for r in report["results"] if not r.get("error") and get_y(r) is not None]
    for fmt in dict.fromkeys(r["format"] for r in rows):
        pts = [(r["bytes"] / 2**20, get_y(r), r["quant"]) for r in rows if r["format"] == fmt]
        label = "fp16 reference" if fmt == "hf" else fmt
        marker, color = STYLE.get(fmt, ("^", "tab:green"))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, color=color, label=label, markersize=7)
        for x, y, q in pts:
            ax.annotate(q, (x, y), textcoords="offset points", xytext=(5, -10 if fmt == "onnx" else 5), fontsize=8)
    ax.set_xlabel("file size (MiB)")
    ax.set_ylabel(y_label)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{report['model']['name']}, profile {report['profile']['name']}, {report['profile']['threads']} threads",
                 fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_plots(report: Report, out: Path) -> list[Path]:
    try:
        import matplotlib

        del matplotlib
    except ImportError:
        raise SlmkitError("plots need matplotlib (the 'bench' extra); or pass --no-plots") from None
    latency = _scatter(report, out / "latency_vs_size.png", "decode ms/token, p50 (log)",
                       lambda r: r["latency"]["decode_ms_p50"], log_y=True)
    drift = _scatter(report, out / "drift_vs_size.png", "mean KL divergence vs fp16 (log)",
                     lambda r: r["quality"].get("mean_kl"), log_y=True)
    return [latency, drift]
