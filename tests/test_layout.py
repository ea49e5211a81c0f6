"""The package's import rules, as each folder's __init__ states them: lower layers never import higher ones."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mnist_exp"
ALLOWED = {  # folder -> what its modules may import from mnist_exp (anywhere in a module, lazily too)
    "files": {"errors", "files"},
    "data": {"config", "errors", "files", "data"},
    "nn": {"errors", "files", "data", "nn"},  # plain arguments: never the runner's Config
    "record": {"config", "errors", "files", "nn", "record"},  # the run directory's one owner: below the runner
}


def imported(path: Path):
    """(line, first part after mnist_exp) of every import of mnist_exp in a module."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mnist_exp":
            parts = node.module.split(".")
            names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".")[1] for alias in node.names if alias.name.startswith("mnist_exp.")]
        else:
            continue
        for name in names:
            yield node.lineno, name


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_lower_layers_never_import_higher_ones(folder):
    modules = sorted((PACKAGE / folder).glob("*.py"))
    assert modules, folder
    wrong = [f"{path.relative_to(PACKAGE)}:{line} imports mnist_exp.{name}" for path in modules
             for line, name in imported(path) if name not in ALLOWED[folder]]
    assert wrong == []


def test_the_rule_checker_sees_lazy_and_plain_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import mnist_exp.runner.record\nfrom mnist_exp import analysis, nn\n"
                      "def f():\n    from mnist_exp.runner.train import train\n")
    assert sorted(name for _, name in imported(module)) == ["analysis", "nn", "runner", "runner"]
