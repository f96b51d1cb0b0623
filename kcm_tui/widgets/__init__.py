"""Widgets of the ceremony TUI."""
