"""The connector contract suite: every registered connector against its real test server."""
