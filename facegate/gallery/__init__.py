"""Galleries: the one place decisions are made (catalog, enrollment, recognition, thresholds, decision log)."""
