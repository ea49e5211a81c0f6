"""File-system guarantees the run record and the data cache rely on: atomic writes, and
locks that name their owner.

Imports: the standard library and mnist_exp.errors only.
"""
