"""Related items on a directed item graph: edges from the log (``edges``), degree-adaptive
neighbour samples (``sampling``), the dual source/target GNN (``model``), its training stage
(``train``), baselines and evaluation, and WatchNext follow-on values (``watchnext``)."""
