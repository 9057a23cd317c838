"""Data layer: one schema (schema.py), sources (synthetic, movielens, tabular), splits."""
