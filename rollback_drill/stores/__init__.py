"""The stack's data stores, reached through their real clients: fingerprint, backup, restore."""
