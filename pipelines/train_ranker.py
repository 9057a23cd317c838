"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app train-ranker`.

    python pipelines/train_ranker.py --help
"""
import sys

from tfrs_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-ranker", *sys.argv[1:]]))
