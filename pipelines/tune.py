"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app tune`.

    .venv/bin/python pipelines/tune.py --help
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
