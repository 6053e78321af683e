"""Built-in recipe files (TOML), read by :mod:`raisin_lock.recipes`."""
