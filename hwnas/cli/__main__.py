"""``python -m hwnas.cli`` (and ``torchrun -m hwnas.cli``) runs the command line."""

from hwnas.cli import main

main()
