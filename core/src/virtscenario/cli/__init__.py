"""The command line: :mod:`.app` (the click group and ``main``), :mod:`.common` (helpers every
command shares), :mod:`.output` (tables), and one module per command in :mod:`.commands`."""
