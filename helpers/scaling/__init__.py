"""Notebook 09: scaling out. Slurm job scripts and their collector (``slurm``), the command line
(``python -m helpers.scaling``), and the data-parallel comparison of 1 and N processes (``runs``)."""
