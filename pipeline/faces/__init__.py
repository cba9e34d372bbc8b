"""Faces: detection, the one-face portrait rule and crop, driving-video tracking, landmarks, offline weights."""
