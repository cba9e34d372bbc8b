"""Video in and out through ffmpeg: probing and streaming frames, writing H.264 MP4, finding the binaries."""
