"""Reading: shard discovery, the formats table, schema unification, pruning, parallel reads.

``lk.dataset`` / ``lk.load`` / ``lk.Dataset`` are the public entry points; they live in
:mod:`lakekit.io.dataset`.
"""
