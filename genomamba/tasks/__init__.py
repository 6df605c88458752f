"""Labelled tasks built from genomes and annotations (numpy only): see :mod:`genomamba.tasks.coding`."""
