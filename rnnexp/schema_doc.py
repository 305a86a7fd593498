"""The docs' column reference (docs/columns.md), rendered from the declared row in rnnexp.schema.

``python -m rnnexp.schema_doc > docs/columns.md`` regenerates the page; tests/test_docs.py fails when
the committed page differs from what the schema renders, so the reference cannot drift from the code.
"""

from __future__ import annotations

import sys

from rnnexp import schema

PAGE = "docs/columns.md"
COMMAND = f"python -m rnnexp.schema_doc > {PAGE}"


def render() -> str:
    """The whole page: a short preface, then one table per CSV (``schema.markdown_table``)."""
    preface = [
        f"<!-- Generated from rnnexp/schema.py by `{COMMAND}`: edit the schema, not this page. -->",
        "",
        "# Columns",
        "",
        "Every column of every table rnnexp writes, in the order it is written, as declared in",
        "`rnnexp/schema.py`. Reading a table with `rnnexp.schema.read_table` gives each column the",
        "dtype below, error rows included ([Reading results](results.md)).",
        "",
        f"- **kind**: what the column is: {', '.join(schema.KINDS)}.",
        f"- **dtype**: the pandas dtype; each of them can hold a missing value ({schema.INT}, {schema.FLOAT64},"
        f" {schema.BOOL}, {schema.STR}).",
        "- **unit**: the unit of its values; empty for text, flags and pure numbers.",
        f"- **compare**: how `rnnexp compare` judges it: {', '.join(schema.RULES)} ([Comparing and CI](comparing.md)).",
        "",
    ]
    return "\n".join(preface) + "\n" + schema.markdown_table()


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
