"""What render and publish share: a job's data and workspace, claim/refuse/fail, and the shared task pieces."""
