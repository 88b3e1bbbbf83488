"""salesforce stand-in."""
