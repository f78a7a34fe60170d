"""HTTP plumbing shared by every daemon: serving, error rendering, RecordIO streams."""
