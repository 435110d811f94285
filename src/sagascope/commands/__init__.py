"""One module per ``sagascope`` subcommand: ``add_arguments(parser)`` and ``run(args, settings)``."""
