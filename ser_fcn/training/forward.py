"""A trained SERModule run on spectrograms outside a Trainer: one utterance's posteriors and
attention, a segmented baseline's averaged posteriors, a dataloader's utterance posteriors.
Shared by the W&B attention logger, inference and the studies."""

from __future__ import annotations

import numpy as np
import torch

from ..data.segments import segment_spans
from .metrics import average_posteriors


@torch.inference_mode()
def attention_of(module, spec: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """(class probabilities (C,), valid attention (F', T_valid') or None) of a (F, T) spectrogram."""
    x = spec.to(device=module.device, dtype=torch.float32)[None, None]
    lengths = torch.tensor([spec.shape[-1]], device=module.device)
    logits, att = module(x, lengths)
    probs = logits.float().softmax(-1)[0].cpu().numpy()
    if att is None:
        return probs, None
    valid = int(module.net.output_lengths(lengths.cpu())[0])
    return probs, att[0, :, :valid].float().cpu().numpy()


@torch.inference_mode()
def segmented_probs(module, spec: torch.Tensor, segment_frames: int) -> np.ndarray:
    """Class probabilities (C,) of a (F, T) spectrogram for a segmented baseline, as it was
    trained and tested: `segment_spans` segments, each zero-padded to `segment_frames`, their
    posteriors averaged."""
    spans = segment_spans(spec.shape[-1], segment_frames)
    x = spec.new_zeros(len(spans), 1, spec.shape[0], segment_frames, dtype=torch.float32)
    for i, (start, stop) in enumerate(spans):
        x[i, 0, :, : stop - start] = spec[:, start:stop]
    lengths = torch.tensor([stop - start for start, stop in spans])
    logits, _ = module(x.to(module.device), lengths.to(module.device))
    _, mean = average_posteriors(logits.float().cpu(), torch.zeros(len(spans), dtype=torch.long))
    return mean[0].numpy()


@torch.inference_mode()
def posteriors(module, loader) -> dict[int, tuple[np.ndarray, int]]:
    """Utterance posteriors (segments averaged) of a dataloader: utt_index -> (probs, label)."""
    logits, utts, labels = [], [], {}
    for batch in loader:
        out, _ = module(batch["x"].to(module.device), batch["lengths"].to(module.device))
        logits.append(out.float().cpu())
        utts.append(batch["utt_index"])
        labels.update(zip(batch["utt_index"].tolist(), batch["y"].tolist()))
    ids, mean = average_posteriors(torch.cat(logits), torch.cat(utts))
    return {u: (p, labels[u]) for u, p in zip(ids.tolist(), mean.numpy())}
