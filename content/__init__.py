"""The plan's content: YAML files in this folder, their schema and their loader."""
