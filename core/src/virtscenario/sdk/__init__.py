"""Tools for plugin authors and users: scaffold a plugin (``plugin new``), check one (``plugin check``),
install plugins with pip, and the pytest-free harness behind :mod:`virtscenario.testing`
(:mod:`.harness`: plugin managers and rendered VMs; :mod:`.fakehost`: fake hosts).

Nothing here is imported on the CLI start-up path: only ``virtscenario plugin ...``,
``virtscenario plugins install/uninstall`` and pytest runs (the fixtures) import it.
"""
