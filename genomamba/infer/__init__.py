"""Using a trained model on FASTA files: ``genomamba embed`` and ``genomamba predict``.

* :mod:`.windows` -- the FASTA records, whole or cut into windows, batched;
* :mod:`.tables` -- the output table, written to a temporary name and renamed (Parquet, TSV, CSV);
* :mod:`.embed` -- one embedding (width ``d_model``) per record or window, for downstream models;
* :mod:`.predict` -- a fine-tuned model's class probabilities (or values) per record or window.
"""
