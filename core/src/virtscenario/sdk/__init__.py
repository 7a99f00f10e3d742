"""Tools for plugin authors and users: scaffold a plugin, install plugins with pip.

Nothing here is imported unless ``virtscenario plugin ...`` or ``virtscenario
plugins install/uninstall`` runs. The pytest helpers live in
:mod:`virtscenario.testing`.
"""
