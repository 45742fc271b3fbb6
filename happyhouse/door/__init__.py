"""The Happy House door: face database (db), detection and alignment (detect), threshold calibration
(calibration) and the ``door`` command line (cli). The face models and their thresholds are ``happyhouse.face``."""
