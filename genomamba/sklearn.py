"""A scikit-learn transformer of DNA sequences into genomamba embeddings.

::

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from genomamba.sklearn import GenomambaEmbedder

    pipe = make_pipeline(GenomambaEmbedder("runs/mlm/model"), LogisticRegression(max_iter=1000))
    cross_val_score(pipe, sequences, labels, groups=chromosomes, cv=GroupKFold(5))

The embedder has no state learned from data (``fit`` only loads the model), so it never leaks
across folds; the model is loaded once per embedder and dropped from pickles.
"""

from __future__ import annotations

import numpy as np

try:  # the base classes give get_params/set_params/clone and the transformer tags
    from sklearn.base import BaseEstimator, TransformerMixin
except ImportError as exc:  # scikit-learn is a dependency; say so if an environment lacks it
    raise ImportError("genomamba.sklearn needs scikit-learn (pip install scikit-learn)") from exc


class GenomambaEmbedder(TransformerMixin, BaseEstimator):
    """Sequences (an iterable of strings, or a 1-D array of them) -> ``(n, d_model)`` embeddings.

    Parameters mirror :meth:`genomamba.api.Genomamba.embed`: ``model`` (a model directory),
    ``pooling`` (mean, max, first, last, center), ``conjoin``, ``device``, ``batch_size``,
    ``lenient``.
    """

    def __init__(self, model, pooling: str = "mean", conjoin: bool | None = None, device: str = "auto",
                 batch_size: int = 64, lenient: bool = False):
        self.model = model
        self.pooling = pooling
        self.conjoin = conjoin
        self.device = device
        self.batch_size = batch_size
        self.lenient = lenient

    def fit(self, X, y=None):
        """Load the model (nothing is learned from ``X``)."""
        self._loaded()
        return self

    def transform(self, X) -> np.ndarray:
        """Embeddings of the sequences in ``X``, float32, one row per sequence."""
        sequences = [str(s) for s in np.asarray(X, dtype=object).reshape(-1)]
        model = self._loaded()
        return model.embed(sequences, pooling=self.pooling, conjoin=self.conjoin, lenient=self.lenient)

    def _loaded(self):
        model = getattr(self, "_model", None)
        if model is None:
            from genomamba.api import load

            model = self._model = load(self.model, device=self.device, batch_size=self.batch_size)
            self.n_features_out_ = model.config.d_model
        return model

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray([f"emb_{i:04d}" for i in range(self._loaded().config.d_model)], dtype=object)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_model", None)  # weights stay in the model directory, not in a pickle
        return state
