"""Happy House: the FaceNet door, neural style transfer and notebook grading, as a package."""
