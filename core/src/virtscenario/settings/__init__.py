"""Settings: the keys (declared by the domain sections and by plugins), their types, and
how a value is resolved from defaults, the scenario, plugins, the user's file and flags."""
