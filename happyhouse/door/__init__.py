"""The Happy House door: face database (db), detection and alignment (detect), threshold calibration
(calibration) and the ``door`` command line (cli). The face model itself is the course's ``fr_utils``."""
