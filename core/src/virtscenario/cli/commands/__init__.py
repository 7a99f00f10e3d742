"""One module per built-in command, imported only when the command runs."""
