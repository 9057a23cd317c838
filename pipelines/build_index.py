"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app build-index`.

    .venv/bin/python pipelines/build_index.py --help
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["build-index", *sys.argv[1:]]))
