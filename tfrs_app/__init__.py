"""tfrs-app: a two-stage recommender on TensorFlow Recommenders.

TFRS 0.7 only works with tf-keras (Keras 2). TensorFlow picks the Keras flavour the
first time it is imported, so the switch is set here, before anything imports it.
Import ``tfrs_app`` before TensorFlow (or set ``TF_USE_LEGACY_KERAS=1`` yourself).
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
