"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app train-sessions`.

    .venv/bin/python pipelines/train_sessions.py --config pipelines/configs/sessions.yaml
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["train-sessions", *sys.argv[1:]]))
