"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app calibrate-thresholds`.

    .venv/bin/python pipelines/calibrate_thresholds.py --help
"""
import sys

from _bootstrap import main

if __name__ == "__main__":
    sys.exit(main(["calibrate-thresholds", *sys.argv[1:]]))
