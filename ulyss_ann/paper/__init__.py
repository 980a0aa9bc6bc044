"""Kumar, Prugniel & Singh, reproduced: self-inversion (Table 3, Fig. 3), the simulated NGC 6397
sample (``ngc6397``) and its analysis (``cluster_report``: Table 4, Figs. 4–7).
"""

# the subpackage's modules (each name has one address: its module's)
__all__ = ["cluster_report", "ngc6397", "selfinversion"]
