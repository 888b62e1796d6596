"""Scripts that print performance figures; docs/performance.md holds their results."""
