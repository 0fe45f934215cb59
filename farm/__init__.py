"""farm: a render farm that repaints videos in the style of a painting, without flicker."""

__version__ = "0.1.0"
