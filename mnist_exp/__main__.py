"""`python -m mnist_exp`: the same entry point as the `mnist-exp` console script."""

from mnist_exp.cli.main import main

if __name__ == "__main__":
    main()
