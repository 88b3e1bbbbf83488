"""dynamics stand-in."""
