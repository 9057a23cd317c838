"""Session and sequence recommendation (GRU4Rec, session baselines, next-item evaluation)."""
