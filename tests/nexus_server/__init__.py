"""The NEXUS-compatible reference server (test and demo infrastructure, never shipped)."""
