"""The one exception type for mistakes a user can make (bad FASTA, params, checkpoint, data)."""


class RbpError(Exception):
    """A problem with the user's input, reported as one clear message (no traceback from the CLI)."""
