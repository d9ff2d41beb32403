"""The one error a consistency check raises for inputs it cannot compare."""


class ConsistencyError(ValueError):
    """A comparison that cannot run: a missing table or column, an unknown time zone, a column
    whose type cannot hold what the pipeline carries. The message names the side, table and column."""
