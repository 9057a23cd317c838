"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app tune`.

    python pipelines/tune.py --help
"""
import sys

from tfrs_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
