"""``python -m virtscenario`` runs the CLI."""

from .cli import main

main()
