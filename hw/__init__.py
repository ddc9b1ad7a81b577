"""edgellm.hw."""
