"""Happy House: face-recognition door and neural style transfer (Course 4, week 4) as Python software."""
