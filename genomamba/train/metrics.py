"""Per-step training metrics: ``metrics.jsonl`` (one JSON object per optimiser step) and a PNG plot.

Each line holds at least ``step`` (1-based), ``loss`` (mean cross-entropy over masked bases),
``accuracy`` (masked-token accuracy), ``perplexity`` (``exp(loss)``), ``lr``, ``tokens``
(tokens in the step, padding excluded), ``seq_len``, ``tokens_per_s``, ``elapsed_s``, and
``peak_memory_bytes`` on CUDA.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from genomamba.errors import InputDataError
from genomamba.io.atomic import replacing

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "metrics.png"


def perplexity(loss: float) -> float:
    """``exp(loss)``, capped so that a diverged loss gives a large number, not an overflow."""
    return math.exp(min(loss, 50.0))


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` (empty list when the file does not exist).

    A last line that is not a whole record is dropped: records are appended one line at a time,
    so only a write cut off by a kill or a full disk leaves one, and resuming must get past it.

    Raises:
        InputDataError: a line before the last that is not a JSON record (file and line named).
    """
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8") as handle:
        lines = [(number, line) for number, line in enumerate(handle, 1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if index == len(lines) - 1:
                break  # the torn tail of an interrupted write
            raise InputDataError(f"{path}: line {number}: not a metrics record ({exc.msg})") from None
    return records


class MetricsWriter:
    """Append step records to ``metrics.jsonl``, flushed per line.

    On resume, ``truncate_after`` drops records of steps later than the checkpoint being resumed
    (steps that ran after it before the interruption), so the file is the run's single history.
    """

    def __init__(self, path: str | Path, truncate_after: int | None = None):
        self.path = Path(path)
        if truncate_after is not None:
            kept = [r for r in read_metrics(self.path) if r["step"] <= truncate_after]
            with replacing(self.path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
                handle.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def plot_metrics(
    metrics_path: str | Path, png_path: str | Path, val_path: str | Path | None = None
) -> Path | None:
    """Loss and masked accuracy against step as a PNG (matplotlib, Agg). None when there is no data.

    With ``val_path`` (``val_metrics.jsonl``, when it exists), each validation set and crop length
    is drawn as its own curve with markers over the training curves.
    """
    records = read_metrics(metrics_path)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(steps, [r["loss"] for r in records], lw=1, label="training")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("masked-token loss (nats)")
    ax_loss.grid(alpha=0.3)
    ax_acc.plot(steps, [r["accuracy"] for r in records], lw=1, color="tab:orange")
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("masked-token accuracy")
    ax_acc.grid(alpha=0.3)
    _plot_validation(read_metrics(val_path) if val_path is not None else [], ax_loss, ax_acc)
    fig.tight_layout()
    try:
        with replacing(png_path) as tmp:  # a full disk leaves the previous plot, not half a PNG
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return Path(png_path)


def _plot_validation(records: list[dict], ax_loss, ax_acc) -> None:
    """Validation curves with markers: a colour per set, a line style per crop length (shortest
    solid), the same on both axes; the legend goes with the loss."""
    import matplotlib.pyplot as plt

    curves: dict[tuple[str, int], list[dict]] = {}
    for r in records:
        curves.setdefault((r["set"], r["seq_len"]), []).append(r)
    sets = list(dict.fromkeys(name for name, _ in curves))
    lengths = sorted({length for _, length in curves})
    # tab20 without its blues and oranges, the training curves' colours: 16 sets before a repeat
    colours = plt.get_cmap("tab20").colors[4:]
    styles = ("-", "--", ":", "-.")
    for (name, length), points in curves.items():
        style = dict(color=colours[sets.index(name) % len(colours)], ls=styles[lengths.index(length) % 4],
                     marker="o", ms=3, lw=1)
        steps = [r["step"] for r in points]
        ax_loss.plot(steps, [r["loss"] for r in points], label=f"validation {name} @{length:,}", **style)
        ax_acc.plot(steps, [r["accuracy"] for r in points], **style)
    if curves:
        ax_loss.legend(fontsize="x-small", ncol=2 if len(curves) > 8 else 1)
