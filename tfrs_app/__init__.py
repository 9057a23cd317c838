"""tfrs-app: a two-stage recommender on TensorFlow Recommenders.

TFRS 0.7 only works with tf-keras (Keras 2). TensorFlow picks the Keras flavour the
first time it is imported, so the switch is set here, before anything imports it.
Import ``tfrs_app`` before TensorFlow (or set ``TF_USE_LEGACY_KERAS=1`` yourself).
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# On a machine without an NVIDIA driver, TensorFlow's only C++ ERROR line is "failed call to
# cuInit ... (303)": level 3 hides it there (Python exceptions are unaffected); with a GPU,
# level 2 keeps real errors visible. Either way a value you set yourself wins.
_NO_GPU = not any(os.path.exists(f"/dev/nvidia{i}") for i in range(8)) and not os.path.exists("/dev/nvidiactl")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if _NO_GPU else "2")

__version__ = "0.1.0"
