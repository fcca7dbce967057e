"""Runtime backends, one module each, behind one protocol."""
