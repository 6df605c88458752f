"""The notebook API, the library in three lines: ``genomamba.load(DIR).embed(["ACGT..."])``.

:func:`load` reads a model directory once and returns a :class:`Genomamba` whose methods take
plain Python strings (or token arrays), batch and pad them, and run the model in eval mode under
``torch.inference_mode`` (no autograd graph; bf16 autocast on CUDA, fp32 on CPU)::

    import genomamba
    model = genomamba.load("runs/mlm/model")            # device="auto": the GPU when there is one
    X = model.embed(["ACGTAC...", "GGCTTA..."])          # (2, d_model) float32 numpy array
    table = genomamba.load("ft/model").predict(seqs)     # class probabilities as a DataFrame
    ll = model.log_likelihood(["ACGTAC..."])             # pseudo-log-likelihood per sequence

Sequences follow the alphabet's policy (:mod:`genomamba.alphabet`): any case, IUPAC codes read as
N, anything else raises :class:`~genomamba.errors.InputDataError` naming the sequence and position
(``lenient=True`` reads it as N).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from genomamba.api.options import model_path
from genomamba.errors import InputDataError

SequencesLike = Iterable[str | bytes | np.ndarray] | str


def encode_sequences(sequences: SequencesLike, *, lenient: bool = False) -> list[np.ndarray]:
    """Token-id arrays of strings (or bytes; uint8 token arrays pass through). A lone string is one
    sequence.

    Raises:
        InputDataError: an empty sequence, or an invalid character (sequence index, position).
    """
    from genomamba.io.labels import encode_text

    if isinstance(sequences, str | bytes):
        sequences = [sequences]
    encoded = []
    for index, sequence in enumerate(sequences):
        if isinstance(sequence, np.ndarray) and sequence.dtype == np.uint8:
            if not len(sequence):
                raise InputDataError(f"sequence {index}: empty sequence")
            encoded.append(sequence)
            continue
        text = sequence if isinstance(sequence, str) else bytes(sequence).decode("latin-1")
        encoded.append(encode_text(text, f"sequence {index}", lenient=lenient))
    return encoded


class Genomamba:
    """A loaded model directory. ``config`` is its ``ModelConfig``; ``task`` the head's task
    (``mlm``, ``sequence``, ``token`` or ``none``)."""

    def __init__(self, model_dir: str | os.PathLike, *, device: str = "auto", batch_size: int = 64):
        from genomamba.infer.runner import load_model

        self.model_dir = model_path(model_dir)  # a shipped model's name becomes its directory
        self.model, self.device = load_model(self.model_dir, device)
        self.config = self.model.config
        self.task = self.config.head.task
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return (f"Genomamba({self.model_dir!r}, {self.task} head, d_model {self.config.d_model}, "
                f"{self.model.num_parameters():,} parameters, {self.device})")

    def embed(
        self,
        sequences: SequencesLike,
        *,
        pooling: str | None = "mean",
        conjoin: bool | None = None,
        layer: int | None = None,
        lenient: bool = False,
    ) -> np.ndarray | list[np.ndarray]:
        """One ``d_model`` vector per sequence, ``(n, d_model)`` float32, with ``pooling`` in mean,
        max, first, last, center; ``pooling=None`` gives per-base embeddings, a list of
        ``(length, d_model)`` arrays. ``conjoin`` averages in the reverse complement's embedding
        (default: for Ph models); ``layer`` (1..n_layer) embeds with the first layers only."""
        from genomamba.infer.sequences import embed_sequences, per_base_embeddings

        ids = encode_sequences(sequences, lenient=lenient)
        if pooling is None:
            return per_base_embeddings(
                self.model, ids, self.device, conjoin=conjoin, layer=layer, batch_size=self.batch_size
            )
        return embed_sequences(
            self.model, ids, self.device,
            pooling=pooling, conjoin=conjoin, layer=layer, batch_size=self.batch_size,
        )

    def predict(self, sequences: SequencesLike, *, lenient: bool = False) -> pd.DataFrame:
        """A fine-tuned model's predictions, one row per sequence: ``p_<label>`` per class (binary:
        the positive class) and ``predicted``, or ``value`` for regression; as ``genomamba predict``.

        Raises:
            InputDataError: the model has no sequence head (fine-tune it first).
        """
        from genomamba.infer.predict import prediction_columns
        from genomamba.model_directory import read_config
        from genomamba.runtime.sequence_head import spec_from_config
        from genomamba.train.evaluate import predict_scores

        spec = spec_from_config(read_config(self.model_dir))
        ids = encode_sequences(sequences, lenient=lenient)
        scores = predict_scores(self.model, ids, spec.task, batch_size=self.batch_size, device=self.device)
        return prediction_columns(spec, scores.reshape(len(ids), -1))

    def log_likelihood(self, sequences: SequencesLike, *, lenient: bool = False) -> np.ndarray:
        """Pseudo-log-likelihood (nats) of each sequence under a masked-LM: the sum over positions
        of log P(the base there | everything else), each position masked in turn. One forward pass
        per position, so cost grows with the square of the length: meant for sequences of up to a
        few kilobases. N positions are skipped.

        Raises:
            InputDataError: the model has no masked-LM head.
        """
        from genomamba.infer.sequences import pseudo_log_likelihood

        if self.task != "mlm":
            raise InputDataError(
                f"{self.model_dir}: log_likelihood needs a masked-LM head, not {self.task!r}"
            )
        ids = encode_sequences(sequences, lenient=lenient)
        return np.array([pseudo_log_likelihood(self.model, s, self.device, self.batch_size) for s in ids])

    def score_variants(
        self,
        vcf: str | os.PathLike | None,
        genome: str | os.PathLike,
        *,
        window: int = 1024,
        regions: Sequence[str] = (),
        lenient: bool = False,
    ) -> pd.DataFrame:
        """Zero-shot scores of the SNVs of ``vcf`` on ``genome`` as ``genomamba score-variants``
        computes them (same columns), as a DataFrame. ``regions`` instead of a VCF: every
        substitution of every position of these ``CHROM:START-END`` regions; ``lenient``: invalid
        characters of the genome read as N."""
        import tempfile

        from genomamba.infer.variants import score_variants

        with tempfile.TemporaryDirectory(prefix="genomamba-variants-") as tmp:
            out = os.path.join(tmp, "scores.parquet")
            score_variants(self.model_dir, vcf, genome, out, regions=tuple(regions), window=window,
                           batch_size=self.batch_size, device=str(self.device), lenient=lenient,
                           log=lambda message: None)
            return pd.read_parquet(out)


def load(model_dir: str | os.PathLike, *, device: str = "auto", batch_size: int = 64) -> Genomamba:
    """Load a model directory (``genomamba pretrain``/``finetune`` output), or a model genomamba
    ships by its name (``genomamba.load("genomamba-small-1k")``), for inference.

    Raises:
        ModelDirectoryError: not a complete model directory (exit code 65 on the command line).
        UnavailableError: ``device="cuda"`` without a GPU.
    """
    return Genomamba(model_dir, device=device, batch_size=batch_size)
