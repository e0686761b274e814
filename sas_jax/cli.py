"""What every command line of the package does with bad input, in one place.

A user error (`sas_jax.errors.UserError`: a missing config file, a bad variant, an
unknown or mistyped `--config.KEY`, a value of the wrong type, a missing input path,
a damaged checkpoint, a bad flag) is ONE line on stderr and exit status 2:

    error: config file configs/nope.py not found; pass an existing file such as configs/sas_small.py ...

Anything else is a bug and keeps its traceback (exit 1). docs/cli.md lists the CLIs.

    @cli.entry_point                       # argparse CLIs: main(argv=None) -> int
    def main(argv=None):
        args = cli.ArgumentParser(prog="python -m sas_jax.x").parse_args(argv)
        ...

    cli.run_absl(main, argv)               # absl CLIs: main(argv, overrides); see sas_jax/main.py

Configs are always loaded through `config_lib.load_config` (never through
ml_collections' `config_flags`, whose errors are tracebacks), so every CLI gives the
same messages, e.g. `unknown config key 'model.hiden_size' (did you mean 'model.hidden_size'?)`.
"""
from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence

from sas_jax.errors import UserError

EXIT_USER_ERROR = 2
CONFIG_PREFIX = "--config."


def one_line(message) -> str:
    """`message` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(message).split())


def report(error) -> int:
    """Prints `error: <message>` (one line) to stderr; returns the exit status 2."""
    print(f"error: {one_line(error) or type(error).__name__}", file=sys.stderr, flush=True)
    return EXIT_USER_ERROR


def entry_point(fn: Callable | None = None, *, user_errors: tuple = ()) -> Callable:
    """Decorates a CLI's `main(argv=None)`: a UserError (or one of `user_errors`,
    e.g. FloatingPointError for a run that diverged) → `report` → returns 2; a return
    of None → 0; SystemExit (--help) and every other exception pass through unchanged."""
    caught = (UserError, *user_errors)

    def wrap(main: Callable) -> Callable:
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            try:
                code = main(*args, **kwargs)
            except caught as e:
                return report(e)
            return 0 if code is None else code

        return wrapper

    return wrap(fn) if fn is not None else wrap


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (missing or unknown arguments, bad values) raise a one-line
    UserError instead of printing the usage and exiting; sub-parsers inherit it."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def split_config_overrides(args: Sequence[str], prefix: str = CONFIG_PREFIX) -> tuple:
    """(the "a.b=v" of every `--config.a.b=v` / `--config.a.b v`, the other arguments).

    A `--config.a.b` followed by nothing or by another `--flag` is absl's boolean form:
    "a.b=true" (`--config.a.b -1` takes the -1)."""
    overrides, rest, items = [], [], list(args)
    while items:
        item = items.pop(0)
        if not (item.startswith(prefix) and len(item) > len(prefix)):
            rest.append(item)
            continue
        item = item[len(prefix):]
        if "=" not in item:
            item = f"{item}={items.pop(0) if items and not items[0].startswith('--') else 'true'}"
        overrides.append(item)
    return overrides, rest


def run_absl(main: Callable, argv: Sequence[str] | None = None, *, prog: str = "") -> None:
    """`absl.app.run` for a CLI whose config is `--config=<file[:variant]>` (a string flag)
    and `--config.KEY=VALUE` overrides: `main(argv, overrides)` is called with the
    positional arguments left and the "KEY=VALUE" list, to load through
    `config_lib.load_config`. A flag error (unknown flag, bad value, missing required
    flag) raises a one-line UserError instead of absl's "FATAL Flags parsing error"
    and usage; wrap the caller in `entry_point` to print it. Exits as `app.run` does."""
    from absl import app, flags  # noqa: PLC0415

    def parse(args):
        overrides, rest = split_config_overrides(args[1:])
        try:
            return flags.FLAGS([args[0], *rest]), overrides
        except flags.Error as e:
            hint = f" (see {prog} --help)" if prog else ""
            raise UserError(f"{one_line(e)}{hint}") from None

    app.run(lambda parsed: main(*parsed), argv=list(sys.argv if argv is None else argv), flags_parser=parse)
