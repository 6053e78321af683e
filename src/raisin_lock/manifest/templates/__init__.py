"""Starter manifests written by ``raisin init --template NAME``."""
