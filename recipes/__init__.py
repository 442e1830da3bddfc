"""Shipped LightningCLI recipes (YAML), resolved by recipe://domain/entry/stage."""
