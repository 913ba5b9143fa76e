"""The exception types for mistakes a user can make (bad FASTA, params, checkpoint, data)."""


class RbpError(Exception):
    """A problem with the user's input, reported as one clear message (no traceback from the CLI)."""


class ParamsError(RbpError):
    """A params file or override that does not fit the schema; the message names the key (`rbp.params`
    raises it; a family's saved settings read back raise it too)."""
