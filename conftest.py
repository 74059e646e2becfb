"""The repo's own tests: pytester drives the plugin as a downstream repo would."""

pytest_plugins = ["pytester"]
