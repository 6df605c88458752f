"""``genomamba embed``: one embedding per FASTA record (or window), as a table for downstream models.

The table has the window columns (file, record, 0-based start, end) and ``emb_0000`` ...
``emb_{d-1}`` (float32, width ``d_model``), so that ``X = table.filter(regex="^emb_").to_numpy()``
is ready for scikit-learn. Embeddings are the backbone's last hidden states pooled over each
window (``mean`` by default; ``max``, ``first``, ``last``); two-strand (PS) models average their
strands, and ``conjoin`` (the default for PH models, as in evaluation) averages in the embedding
of the reverse complement, so every embedding is the same for a sequence and its reverse
complement whenever the model's predictions are.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from genomamba.infer.runner import load_model, run_over_windows
from genomamba.infer.tables import table_format, write_table_atomic
from genomamba.infer.windows import fasta_windows


def embed_fasta(
    model_dir: str | os.PathLike,
    fasta: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    pooling: str = "mean",
    conjoin: bool | None = None,
    window: int | None = None,
    stride: int | None = None,
    last: str = "keep",
    batch_size: int = 16,
    device: str = "auto",
    lenient: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Embed every record (or window) of the ``fasta`` files with the model in ``model_dir``.

    Returns:
        ``{"out", "rows", "width", "pooling"}``.

    Raises:
        InputDataError: an invalid FASTA file or an empty record (nothing is written).
        CheckpointError: ``model_dir`` cannot be loaded. UnavailableError: ``cuda`` without a GPU.
        ValueError: an unknown output suffix or pooling, a bad window or stride.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    table_format(out)  # an unusable output path fails before any work
    model, device_t = load_model(model_dir, device)
    windows = fasta_windows(fasta, window=window, stride=stride, last=last, lenient=lenient)
    frame, values = run_over_windows(
        windows, lambda ids, mask: model.embed(ids, mask, pooling=pooling, conjoin=conjoin),
        batch_size=batch_size, device=device_t,
    )
    width = model.config.d_model
    columns = [f"emb_{i:04d}" for i in range(width)]
    frame = frame.join(_frame(values.reshape(len(frame), width), columns))
    write_table_atomic(frame, out)
    log(f"embed: {len(frame)} embeddings of width {width} ({pooling} pooling) written to {out}")
    return {"out": str(out), "rows": len(frame), "width": width, "pooling": pooling}


def _frame(values, columns):
    import pandas as pd

    return pd.DataFrame(values, columns=columns)
