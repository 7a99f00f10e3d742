"""``python -m virtscenario`` runs the CLI."""

from .cli.app import main

main()
