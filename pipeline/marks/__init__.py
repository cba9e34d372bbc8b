"""What marks a published video: the visible label, the invisible watermark, the C2PA manifest."""
