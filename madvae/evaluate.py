"""Inference over stored sets: predictions of a classifier, optionally behind a purifier."""
from __future__ import annotations

import numpy as np
import torch


@torch.inference_mode()
def predict_labels(classifier, batches, device, field: str = "x_clean", purifier=None) -> np.ndarray:
    """Predicted labels for ``batch[field]`` over an iterable of batches (dicts of numpy arrays)."""
    classifier.eval()
    predictions = []
    for batch in batches:
        x = torch.from_numpy(batch[field]).to(device)
        if purifier is not None:
            x = purifier(x)
        predictions.append(classifier(x).argmax(1).cpu().numpy())
    return np.concatenate(predictions) if predictions else np.zeros(0, dtype=np.int64)
