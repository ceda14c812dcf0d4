"""The loaders: shard discovery, schema unification, pruning, pushdown, parallel reads."""
