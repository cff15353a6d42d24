"""A SageMaker PyTorch inference.py with model_fn only; the PyTorch container's defaults do the rest.

JSON and CSV bodies become float32 tensors (NPY keeps the array's dtype), the model runs in eval
mode under torch.no_grad(), and its output tensor is encoded for the Accept header.
"""
import os

import torch


def model_fn(model_dir):
    model = torch.nn.Linear(3, 2)
    model.load_state_dict(torch.load(os.path.join(model_dir, "model.pth"), weights_only=True))
    return model
