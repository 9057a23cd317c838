"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app export`.

    python pipelines/export.py --help
"""
import sys

from tfrs_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
