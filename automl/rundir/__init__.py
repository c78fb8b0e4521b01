"""The run folder: its layout, its lock, its model files and its manifest.

This package is the owner of the run folder's format; other modules ask it for paths and records.
"""
