"""Latency, memory and quality metrics, and reports."""
