"""Where the baselines cut an utterance into fixed-length segments (Satt et al. 2017, [9] of the paper).

Satt et al. use 3 s segments and zero-pad a shorter utterance. They do not say how the tail
of a longer utterance is handled; here the last segment ends at the utterance's end and
overlaps the previous one, so no segment is mostly padding and every frame is covered.
"""


def segment_spans(n_frames: int, segment_frames: int) -> list[tuple[int, int]]:
    """(start, stop) frame spans covering an utterance of `n_frames` frames.

    Each span holds min(n_frames, segment_frames) valid frames.
    """
    if n_frames <= 0 or segment_frames <= 0:
        raise ValueError(f"segment_spans: need positive lengths, got n_frames={n_frames}, segment_frames={segment_frames}")
    if n_frames <= segment_frames:
        return [(0, n_frames)]  # one segment, zero-padded to segment_frames by segment_collate
    starts = list(range(0, n_frames - segment_frames + 1, segment_frames))
    if starts[-1] + segment_frames < n_frames:
        starts.append(n_frames - segment_frames)  # tail: ends at the utterance end, overlapping
    return [(s, s + segment_frames) for s in starts]
