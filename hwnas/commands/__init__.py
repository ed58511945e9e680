"""CLI command groups, one module per area; each module has `register(cli)`."""
