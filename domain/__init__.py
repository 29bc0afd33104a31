"""Shared domain code: settings, identifiers, templates and the rendering engine.

Every other package may import this one; it imports none of them.
"""
