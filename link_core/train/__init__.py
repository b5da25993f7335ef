"""Training: typed config, the one loop for every backbone, its phases, losses and logs."""
