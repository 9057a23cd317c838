"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app export`.

    .venv/bin/python pipelines/export.py --help
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
