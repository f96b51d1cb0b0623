"""Screens of the ceremony TUI."""
