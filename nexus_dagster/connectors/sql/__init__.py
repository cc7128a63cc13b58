"""Helpers of the database connector: URLs and secrets, type mapping, bulk loaders."""
