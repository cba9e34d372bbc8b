"""Object storage: the S3 client, the audit bucket, and the project's own SeaweedFS for one machine."""
