"""loadgen: an open-loop load generator for OpenAI-compatible LLM serving endpoints."""

__version__ = "0.1.0"
