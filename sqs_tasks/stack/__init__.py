"""The SAM stack of a project: the template sources (`sources/`), rendered by `generate`."""
