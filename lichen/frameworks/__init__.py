"""Frameworks that run on the lichen master through the v1 scheduler API, like any other."""
