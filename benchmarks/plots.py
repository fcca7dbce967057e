"""PNG plots of a bench report: decode latency vs size, quality drift vs size, one series per format; and the
frontier (bits per weight against mean KL and same top-1, the Pareto front joined)."""
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
    _label(ax, "file size (MiB)", y_label, log_y)
    ax.legend()
    ax.set_title(f"{report['model']['name']}, profile {report['profile']['name']}, {report['profile']['threads']} threads",
                 fontsize=10)
    return _save(fig, path)


def _label(ax, x_label: str, y_label: str, log_y: bool) -> None:
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)


def _save(fig, path: Path) -> Path:
    """The figure as a PNG at ``path``, atomically; the figure closed."""
    import matplotlib.pyplot as plt

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
    return [latency, drift, _frontier_plot(report, out / "frontier.png")]


def _frontier_plot(report: Report, path: Path) -> Path:
    """Bits per weight against mean KL (log) and same top-1, the Pareto front joined, the smallest passing ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slmkit.benchmarks.frontier import point

    f = report.get("frontier") or {"pareto": [], "smallest_passing": None}
    rows = [r for r in report["results"] if point(r) is not None]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), dpi=110)
    for ax, (label, get, log_y) in zip(axes, (("mean KL divergence vs fp16 (log)", lambda r: r["quality"]["mean_kl"], True),
                                              ("same top-1 as fp16 (%)",
                                               lambda r: 100 * (r["quality"].get("same_top1") or 0), False))):
        for fmt in dict.fromkeys(r["format"] for r in rows):
            marker, color = STYLE.get(fmt, ("^", "tab:green"))
            pts = [r for r in rows if r["format"] == fmt]
            ax.plot([r["bits_per_weight"] for r in pts], [get(r) for r in pts], marker, color=color, label=fmt, markersize=7)
            for r in pts:
                ax.annotate(r["quant"] + ("*" if r.get("calibration") else ""), (r["bits_per_weight"], get(r)),
                            textcoords="offset points", xytext=(5, 4), fontsize=7)
        front = sorted((r for r in rows if r["name"] in f["pareto"]), key=lambda r: r["bits_per_weight"])
        ax.plot([r["bits_per_weight"] for r in front], [get(r) for r in front], "-", color="black", alpha=0.4,
                label="Pareto front (KL)")
        best = [r for r in rows if r["name"] == f["smallest_passing"]]
        if best:
            ax.plot([best[0]["bits_per_weight"]], [get(best[0])], "o", markersize=15, markerfacecolor="none",
                    color="tab:red", label="smallest passing check")
        _label(ax, "bits per weight (tensor data)", label, log_y)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['model']['name']}: size against drift (* calibrated), profile {report['profile']['name']}",
                 fontsize=10)
    return _save(fig, path)
