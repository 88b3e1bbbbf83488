"""Marketo, the one home of its API for both plugins: client, token, limiter, budget, objects."""
