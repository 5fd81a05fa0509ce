"""One module per tunebench subcommand; each defines register(subparsers)."""
