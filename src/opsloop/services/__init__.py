"""Background services that ``opsloop up`` runs next to the API: collection, retention."""
