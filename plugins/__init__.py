"""Backends, imported as ``pinnacle.plugins.<name>`` and chosen by the URI scheme."""
