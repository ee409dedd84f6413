"""Component resources of the platform: one per file."""
