"""eg3d_link."""
