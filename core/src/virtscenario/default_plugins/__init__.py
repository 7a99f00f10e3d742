"""The core's own plugins, registered through the ``virtscenario`` entry points like any other."""
