"""The `nmt` subcommands: one module per command or close group, each registered on app."""
