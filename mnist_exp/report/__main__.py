"""`python -m mnist_exp.report PATH... [--out FILE]`: one HTML file to compare runs, offline."""

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_exp.report",
                                     description="Write one self-contained HTML report of the runs under the paths.")
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs, sweep dirs or outputs/ trees")
    parser.add_argument("--out", type=Path, default=Path("report.html"),
                        help="the HTML file to write (default: report.html here; a directory: report.html in it)")
    args = parser.parse_args(argv)
    from mnist_exp.analysis import cli, results
    from mnist_exp.report import REPORT_HTML, MissingExtra, build_report

    results.brief_warnings(parser.prog)
    out = args.out / REPORT_HTML if args.out.is_dir() else args.out
    if not out.parent.is_dir():
        return _error(parser.prog, f"--out {args.out}: the directory {out.parent} does not exist", 2)
    try:
        count = build_report(args.paths, out)
    except MissingExtra as e:
        return _error(parser.prog, str(e), 2)
    except FileNotFoundError as e:
        return _error(parser.prog, cli.unreadable(e), 2)
    except OSError as e:  # writing the report (beside `out`: its temp file) is 4, reading the runs 2
        if e.filename is None or Path(e.filename).absolute().parent == out.absolute().parent:
            return _error(parser.prog, f"cannot write {out}: {e.strerror or e}", 4)
        return _error(parser.prog, cli.unreadable(e), 2)
    if not count:
        print(f"no runs under {', '.join(map(str, args.paths))}; wrote an empty report", file=sys.stderr)
    print(f"wrote {out} ({count} runs)")
    return 0


def _error(prog: str, message: str, code: int) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    from mnist_exp.analysis.cli import run_main

    sys.exit(run_main("python -m mnist_exp.report", main))
