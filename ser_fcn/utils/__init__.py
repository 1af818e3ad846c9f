"""Small helpers that every layer uses: atomic file writes, a description of the machine,
the names of a run folder's files, durations as text."""
