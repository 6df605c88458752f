"""``genomamba embed``: one embedding per FASTA record (or window), as a table for downstream models.

The table has the window columns (file, record, 0-based start, end) and ``emb_0000`` ...
``emb_{d-1}`` (float32, width ``d_model``), so that ``X = table.filter(regex="^emb_").to_numpy()``
is ready for scikit-learn. Embeddings are the backbone's last hidden states pooled over each
window (``mean`` by default; ``max``, ``first``, ``last``, ``center``), read alone or, with
``context="record"``, from the hidden states of its whole record; two-strand (PS) models average their
strands, and ``conjoin`` (the default for PH models, as in evaluation) averages in the embedding
of the reverse complement, so every embedding is the same for a sequence and its reverse
complement whenever the model's predictions are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import pandas as pd

from genomamba.infer.runner import model_table
from genomamba.infer.tables import require_table
from genomamba.runtime.log import stderr_log


def embed_fasta(
    model_dir: str | os.PathLike,
    fasta: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    pooling: str = "mean",
    conjoin: bool | None = None,
    layer: int | None = None,
    log: Callable[[str], None] | None = None,
    **options,
) -> dict:
    """Embed every record (or window) of the ``fasta`` files with the model in ``model_dir``.

    ``options``: windowing, batch size, device, lenient reading, ``context`` (``window`` or
    ``record``: :mod:`genomamba.infer.record_context`) and its ``stream`` settings
    (:func:`~genomamba.infer.runner.model_table`).

    Returns:
        ``{"out", "rows", "width", "pooling"}``.

    Raises:
        InputDataError: an invalid FASTA file, or no sequence at all (nothing is written).
        ModelDirectoryError: ``model_dir`` cannot be loaded. UnavailableError: ``cuda`` without a GPU.
        ValueError: an unknown output suffix (or bedGraph) or pooling, a bad window or stride, a
            ``layer`` the model does not have.
    """
    log = log or stderr_log
    require_table(out, "a track (bedGraph, bigWig) holds one value per window, an embedding many")
    if layer is not None:  # checked before any window is read
        from genomamba.model_directory import read_config

        n_layer = read_config(model_dir)["architecture"]["n_layer"]
        if not 1 <= layer <= n_layer:
            raise ValueError(f"--layer must be 1..{n_layer} (the model's layers), got {layer}")

    def in_record(model, ids, spans, **stream):  # --context record: the windows of one whole record
        from genomamba.model.streaming_windows import streamed_window_embeddings

        return streamed_window_embeddings(model, ids, spans, pooling=pooling, conjoin=conjoin, layer=layer,
                                          **stream)[0]

    rows, names = model_table(
        model_dir, fasta, out,
        lambda model, ids, mask: model.embed(ids, mask, pooling=pooling, conjoin=conjoin, layer=layer),
        lambda values: pd.DataFrame(values, columns=[f"emb_{i:04d}" for i in range(values.shape[1])]),
        provenance={"command": "embed", "pooling": pooling, "conjoin": conjoin, "layer": layer},
        record_compute=in_record, log=log,
        **options,
    )
    width = sum(name.startswith("emb_") for name in names)
    log(f"embed: {rows} embeddings of width {width} ({pooling} pooling) written to {out}")
    return {"out": str(out), "rows": rows, "width": width, "pooling": pooling}
