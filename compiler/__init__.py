"""edgellm.compiler."""
