"""Running the CLI in-process, as the tests of every command do."""
from complexity.__main__ import main


def run_cli(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``python -m complexity ARGV``; argparse's
    own errors (SystemExit) and UsageError (returned 2) read the same."""
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
