"""Helpers the tests share (import as ``from helpers.x import y``; tests/ is on sys.path)."""
