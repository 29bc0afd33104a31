"""The Faust stream processors: one app per worker role, each its own consumer group."""
