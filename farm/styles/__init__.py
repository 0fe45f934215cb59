"""Style networks, their weights, and the named-style catalog."""
