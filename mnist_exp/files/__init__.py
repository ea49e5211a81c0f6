"""File-system guarantees the run record and the data cache rely on: atomic writes,
locks that name their owner, and reading only regular files of a bounded size.

Imports: the standard library and mnist_exp.errors only.
"""
