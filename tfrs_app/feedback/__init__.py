"""Delayed feedback: importance weights for engagement labels that flip after training time.

- ``synthetic``: an impression log with delayed conversions and known eventual labels;
- ``hazard``: the auxiliary model (a discrete-time conversion hazard) behind fsiw, es_dfm and
  pre_conversion;
- ``weights``: the methods, turning a training split into labels and ``weight_engagement``.
"""
