"""Compiler passes, one per file."""
