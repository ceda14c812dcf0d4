"""Beyond one machine: adapters that hand lakekit's planned work to Dask or Ray.

lakekit plans (files, row groups, pruning, schema, Delta correctness) and the engine only
runs the pieces; lakekit never schedules work of its own. Reads: ``Dataset.to_dask`` and
``Dataset.to_ray`` (:mod:`lakekit.scale.dask`, :mod:`lakekit.scale.ray`); checks and writes
run their per-partition step through :mod:`lakekit.scale.engines`. Each engine is an extra:
``pip install 'lakekit[dask]'`` or ``'lakekit[ray]'``.
"""
