"""The one compiled part of lakekit: the JSON Lines parser (lakekit/io/jsonl/_ndjson.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler,
lakekit installs and JSONL blocks are parsed by pyarrow.json alone (slower, same results);
``lakekit.io.jsonl.native_parser()`` tells which is in use.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lakekit.io.jsonl._ndjson",
            sources=["lakekit/io/jsonl/_ndjson.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ],
)
