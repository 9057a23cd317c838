"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app train-retrieval`.

    .venv/bin/python pipelines/train_retrieval.py --help
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["train-retrieval", *sys.argv[1:]]))
