"""HTTP to serving pods (metrics scraping, smoke requests, quality gate): filled in by the rollout work."""
