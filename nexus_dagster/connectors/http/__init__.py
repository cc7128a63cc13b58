"""HTTP building blocks of the API connector: client (retries, rate limit), auth and pagination
styles (open registries, see styles), response records (JSON -> flat Arrow columns)."""
