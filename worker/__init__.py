"""Batch prediction workers (Celery over Redis); also the settings shared with the gateway."""
