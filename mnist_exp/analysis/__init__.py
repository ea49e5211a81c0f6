"""Reading runs back: DataFrames of runs and epochs, the run list, sweep summaries and
comparisons, evaluating and loading a saved model.

Imports: anything below it (config, errors, files, data, nn, runner's record readers).
The user-facing names stay at the top: mnist_exp.results, python -m mnist_exp.evaluate,
python -m mnist_exp.summarize, python -m mnist_exp.runs, mnist_exp.load_model.
"""
