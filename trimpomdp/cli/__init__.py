"""Command-line interface: ``trimpomdp COMMAND``; see :mod:`trimpomdp.cli.main`."""
