"""The fault-injection suite (issue 6): each promise of README's "How it works", under fire."""
