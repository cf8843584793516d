"""The Textual technician console, `branchline tui` (to come with the console issue)."""
