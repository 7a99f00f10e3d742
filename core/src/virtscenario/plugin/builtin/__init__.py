"""The core's essential plugins, registered through the ``virtscenario`` entry points like any
other plugin but impossible to disable (:data:`virtscenario.plugin.manager.ESSENTIAL_PLUGINS`)."""
