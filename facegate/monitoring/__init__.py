"""Monitoring: Prometheus metrics, drift between decision windows, and the automatic response."""
