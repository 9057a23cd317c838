"""Thin Keras pipeline script: flags -> config -> stage. Same flags as `tfrs-app build-index`.

    python pipelines/build_index.py --help
"""
import sys

from tfrs_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-index", *sys.argv[1:]]))
