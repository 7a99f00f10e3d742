"""Test fixture: importing this plugin fails, as a plugin with a missing dependency does."""

import virtscenario_dependency_that_is_not_installed  # noqa: F401
