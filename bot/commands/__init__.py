"""One module per CLI verb: parse nothing, do the work, return an exit code or data."""
