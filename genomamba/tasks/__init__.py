"""What labelled data asks of a model (numpy only, no torch): :mod:`~genomamba.tasks.coding` builds
make-task's coding-region task from a genome and its annotation, :mod:`~genomamba.tasks.targets`
decides which task labels pose and encodes them as targets, :mod:`~genomamba.tasks.mutagenesis`
lists the substitutions of in-silico saturation mutagenesis for score-variants."""
