"""Thin HTTP routes; the logic they call lives in plain functions of the gateway package."""
