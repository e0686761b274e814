"""The one error type for bad user input: its message is a single line naming the fix."""


class UserError(Exception):
    """Raised for bad input (config, corpus, tokenizer, workdir). The CLIs print
    `error: <message>` and exit with status 2; nothing already saved is touched."""
