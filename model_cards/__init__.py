"""Model card templates for registry entries, shipped as package data."""
