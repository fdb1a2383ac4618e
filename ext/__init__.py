"""Model integrations, imported as ``pinnacle.ext.<name>``."""
