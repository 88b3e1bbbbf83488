"""marketo stand-in."""
