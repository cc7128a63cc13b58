"""HTTP building blocks of the API connector: client (retries, rate limit), auth, pagination,
records (JSON -> flat Arrow columns)."""
