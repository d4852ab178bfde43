"""Accuracy measurement: metrics, protocols, reports."""
