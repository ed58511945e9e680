"""What the CLI tests share: invoking `hwnas` in-process and the one-line error every bad input must give."""

from click.testing import CliRunner

from hwnas.cli import cli


def run(*args):
    """``hwnas ARGS...`` in this process (arguments may be paths or numbers)."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, message: str) -> None:
    """Exit code 2 and a single line ``Error: ...`` that contains ``message``."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
