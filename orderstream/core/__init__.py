"""The core every program shares: settings, the Redis read model, the PostgreSQL tables."""
