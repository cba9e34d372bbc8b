"""A batch: the file a content team writes, its submission, the `nightly-batch` flow, and its status rows."""
