"""genomamba's typed library surface: what notebooks call, and what every command calls.

In a notebook, :func:`load` reads a model directory once and returns a :class:`Genomamba` whose
methods take plain strings (:mod:`genomamba.api.notebook`)::

    import genomamba
    X = genomamba.load("runs/mlm/model").embed(["ACGTAC...", "GGCTTA..."])

Every ``genomamba`` command is one function with explicit keyword parameters, a docstring saying
what it reads, writes, returns and raises, and the command line's exit codes in the
:mod:`genomamba.errors` it raises; the command only parses options, calls it and prints:

* :mod:`.data` -- :func:`fetch` (``--list``: :func:`manifest_files`), :func:`tokenize`,
  :func:`validate`, :func:`make_task`;
* :mod:`.training` -- :func:`pretrain`, :func:`finetune`, :func:`evaluate`, :func:`benchmark`;
* :mod:`.inference` -- :func:`embed` (``--per-base``: :func:`embed_per_base`), :func:`predict`,
  :func:`score_variants`, :func:`track`;
* :mod:`.install` -- :func:`doctor`, :func:`workflow_init`.

Importing this package (or any module of it) imports neither torch nor pandas: each function
imports what it needs when called, and the notebook names are looked up on first use.
"""

from __future__ import annotations

from genomamba.api.data import fetch, make_task, manifest_files, tokenize, validate
from genomamba.api.inference import embed, embed_per_base, predict, score_variants, track
from genomamba.api.install import doctor, workflow_init
from genomamba.api.training import benchmark, evaluate, finetune, pretrain

#: The notebook API's names, from :mod:`genomamba.api.notebook` (numpy and pandas at import).
_NOTEBOOK = ("Genomamba", "SequencesLike", "encode_sequences", "load")

__all__ = [
    *_NOTEBOOK,
    "benchmark", "doctor", "embed", "embed_per_base", "evaluate", "fetch", "finetune", "make_task",
    "manifest_files", "predict", "pretrain", "score_variants", "tokenize", "track", "validate",
    "workflow_init",
]


def __getattr__(name: str):
    if name in _NOTEBOOK:
        from genomamba.api import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'genomamba.api' has no attribute {name!r}")
