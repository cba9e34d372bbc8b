"""Media stages as plain functions on files and arrays: video I/O, faces, animation, checks, marks, storage."""
