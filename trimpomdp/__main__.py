"""`python -m trimpomdp` runs the command-line interface."""
from trimpomdp.cli.main import main

raise SystemExit(main())
