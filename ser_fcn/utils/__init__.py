"""Small helpers that every layer uses: atomic file writes, a description of the machine."""
