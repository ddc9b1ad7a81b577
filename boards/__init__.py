"""edgellm.boards."""
