"""``virtscenario shell``: an interactive shell over the CLI, with upstream virt-scenario's guided flow.

runner.py runs one CLI line in-process; guided.py holds the guided flow (use, set, show, xml,
create and upstream's short verbs); complete.py computes TAB completions; history.py keeps the
history file private; repl.py reads lines from a terminal (prompt_toolkit) or a script on stdin.
Only ``virtscenario shell`` imports this package, so the CLI's start-up never pays for it.
"""
