"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app train-ranker`.

    .venv/bin/python pipelines/train_ranker.py --help
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["train-ranker", *sys.argv[1:]]))
