"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app calibrate-thresholds`.

    python pipelines/calibrate_thresholds.py --help
"""
import sys

from tfrs_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["calibrate-thresholds", *sys.argv[1:]]))
