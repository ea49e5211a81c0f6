"""How the result tools end: a closed pipe (`runs | head`) or Ctrl-C is one quiet exit, never a
traceback, wherever it lands (in the imports too).

Exit codes: 141 when the reader of stdout went away (128 + SIGPIPE, what a shell shows for
`yes | head`), 130 on Ctrl-C (128 + SIGINT).
"""

import importlib
import os
import signal
import sys
from typing import Callable, Optional

EXIT_PIPE = 141
EXIT_INTERRUPTED = 130


def run_tool(prog: str, module: str) -> int:
    """Import `module` and return what its main() returns (None is 0). A Ctrl-C during the
    imports waits for them to end: one cut short leaves a library half set up (OmegaConf's
    structured configs then fail with an AttributeError), not a clean interruption."""
    def imported():
        stopped = []
        previous = signal.signal(signal.SIGINT, lambda *_: stopped.append(True))
        try:
            tool = importlib.import_module(module)
        finally:
            signal.signal(signal.SIGINT, previous)
        if stopped:
            raise KeyboardInterrupt
        return tool.main()

    return run_main(prog, imported)


def run_main(prog: str, main: Callable[[], Optional[int]]) -> int:
    """main()'s exit code; a closed stdout or Ctrl-C ends it quietly (see above)."""
    try:
        code = main()
        sys.stdout.flush()  # a closed pipe shows here when the output was small
        return code or 0
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


EXIT_USER_ERROR = 2


def fail(prog: str, message: str) -> int:
    """A result tool's one error line on stderr; returns the exit code for bad input."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def unreadable(error: OSError) -> str:
    """An error reading the paths asked for, as one line: ours say it all, the system's name the path."""
    if error.filename is None:
        return str(error)
    return f"{error.filename}: cannot be read ({error.strerror or error})"


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's last flush must not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
