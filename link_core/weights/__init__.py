"""Files of weights: safetensors checkpoints (atomic writes), a code-free NVIDIA pickle reader."""
