"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app train-graph`.

    .venv/bin/python pipelines/train_graph.py --config pipelines/configs/graph.yaml
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["train-graph", *sys.argv[1:]]))
