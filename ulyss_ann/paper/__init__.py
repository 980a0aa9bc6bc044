"""Kumar, Prugniel & Singh, reproduced: self-inversion (Table 3, Fig. 3), the simulated NGC 6397
sample (``ngc6397``) and its analysis (``cluster_report``: Table 4, Figs. 4–7).
"""
