"""Plugins: hook specifications, discovery, the manager, and the typed facade that calls hooks."""
