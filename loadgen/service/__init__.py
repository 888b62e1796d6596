"""loadgen as a service: an authenticated API that queues sweeps and keeps their results."""
