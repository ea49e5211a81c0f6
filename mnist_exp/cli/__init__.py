"""The command line: the entry point (main.py), what Hydra runs for each job (task.py), the
checks of what was typed (command_line.py, dir_guard.py), the Hydra callbacks of sweeps
(sweep_callbacks.py, sweep_resume.py), exit codes and one-line errors (exits.py), and what an
invocation learns while Hydra runs it (invocation.py).

Imports anything below it; nothing imports it but the launchers, which Hydra runs inside it.
"""
