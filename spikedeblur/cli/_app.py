"""The Typer application, its global options and the translation of errors into exit codes."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import click
import typer
from rich.console import Console
from rich.logging import RichHandler

from spikedeblur import __version__
from spikedeblur.errors import SpikedeblurError

# Results go to stdout; logs, progress bars and errors go to stderr so that output can be piped.
stdout_console = Console(highlight=False, soft_wrap=True)
stderr_console = Console(stderr=True, highlight=False)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass
class GlobalOptions:
    """Options given before the command name, shared by every command."""

    verbose: int = 0
    quiet: bool = False
    debug: bool = False

    @property
    def show_progress(self) -> bool:
        return not self.quiet


global_options = GlobalOptions()


def _print_error(message: str) -> None:
    stderr_console.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False, soft_wrap=True)


def _describe_os_error(error: OSError) -> str:
    if error.filename is not None:
        return f"{error.strerror or error.__class__.__name__}: {error.filename}"
    return str(error)


# Options of the group, which click only accepts before the command name.
_GLOBAL_OPTIONS = frozenset({"--debug", "--verbose", "-v", "--quiet", "-q"})


def _describe_usage_error(error: click.ClickException) -> str:
    message = error.format_message()
    context = getattr(error, "ctx", None)
    if isinstance(error, click.NoSuchOption) and error.option_name in _GLOBAL_OPTIONS and context is not None:
        command = context.command_path.split()[-1]
        return (
            f"{message.rstrip('.')}: {error.option_name} goes before the command, "
            f"as in 'spikedeblur {error.option_name} {command} ...'"
        )
    if context is not None:
        message += f" (see '{context.command_path} --help')"
    return message


class SpikedeblurGroup(typer.core.TyperGroup):
    """Command group that turns known exceptions into one-line errors unless ``--debug`` is on.

    Doing this in the group (rather than around ``app()``) means ``CliRunner`` tests see the same
    messages and exit codes as a user in a terminal.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # Click prints usage errors as a multi-line block and Typer as a framed box. Users get one
        # line with the fix instead, with the same exit code 2.
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)

        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            error.show()
            sys.exit(error.exit_code)
        except click.ClickException as error:
            _print_error(_describe_usage_error(error))
            sys.exit(error.exit_code)
        except click.exceptions.Abort:
            _print_error("aborted")
            sys.exit(EXIT_FAILURE)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            if global_options.debug:
                raise
            _print_error("interrupted; no partial output was kept")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except SpikedeblurError as error:
            if global_options.debug:
                raise
            _print_error(str(error))
            raise click.exceptions.Exit(EXIT_FAILURE) from None
        except OSError as error:
            if global_options.debug:
                raise
            _print_error(_describe_os_error(error))
            raise click.exceptions.Exit(EXIT_FAILURE) from None
        except Exception as error:  # noqa: BLE001 - last resort so users never see a bare traceback
            if global_options.debug:
                raise
            _print_error(
                f"unexpected {error.__class__.__name__}: {error} "
                "(this is a bug; rerun with --debug for the traceback and report it)"
            )
            raise click.exceptions.Exit(EXIT_FAILURE) from None


app = typer.Typer(
    name="spikedeblur",
    cls=SpikedeblurGroup,
    help="Remove motion blur from video with a spike camera stream recorded alongside it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _configure_logging(options: GlobalOptions) -> None:
    if options.quiet:
        level = logging.ERROR
    elif options.verbose >= 1 or options.debug:
        level = logging.DEBUG
    else:
        level = logging.INFO

    handler = RichHandler(
        console=stderr_console,
        show_time=False,
        show_path=options.debug,
        rich_tracebacks=False,
        markup=False,
    )
    package_logger = logging.getLogger("spikedeblur")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(level)
    package_logger.propagate = False


def _print_version(value: bool) -> None:
    if value:
        stdout_console.print(f"spikedeblur {__version__}")
        raise typer.Exit()


@app.callback()
def _main_callback(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, metavar="", show_default=False, help="Log more detail (debug messages)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log only errors and hide progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    global_options.verbose = verbose
    global_options.quiet = quiet
    global_options.debug = debug
    _configure_logging(global_options)


def run_app(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with 0 on success, 1 on failure, 2 on a usage error, 130 on Ctrl-C."""
    try:
        app(args=argv, prog_name="spikedeblur", standalone_mode=True)
    except SystemExit:
        raise
    except Exception as error:  # raised outside any command, e.g. while parsing options
        if "--debug" in (argv if argv is not None else sys.argv):
            raise
        _print_error(f"unexpected {error.__class__.__name__}: {error} (rerun with --debug for the traceback)")
        sys.exit(EXIT_FAILURE)
