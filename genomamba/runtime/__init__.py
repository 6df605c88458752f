"""What training and inference both need, so that neither imports the other.

* :mod:`~genomamba.runtime.device` -- which device a process runs on;
* :mod:`~genomamba.runtime.precision` -- the autocast every forward pass runs under;
* :mod:`~genomamba.runtime.batching` -- token arrays to a padded batch and its mask;
* :mod:`~genomamba.runtime.sequence_head` -- what a sequence head's outputs mean, and scores from its logits;
* :mod:`~genomamba.runtime.log` -- where one-line messages go by default.

The layer sits between {train, infer} and {model_directory, tasks} (see docs/architecture.md): it
may import model_directory, tasks, model, ops, io, alphabet and errors, never train, infer, api or cli.
"""
