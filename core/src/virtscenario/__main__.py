"""``python -m virtscenario`` runs the CLI."""

from .cli.entry import main

main()
