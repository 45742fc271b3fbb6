"""The Happy House door: the face database and its search (face_db), detection and alignment (detect),
enrol/verify/identify and their decisions (recognition, decision, enrolment, cohort), threshold
calibration (calibration), the ``door`` command line (cli), the HTTP service (service, event_api) and
the watcher at a camera (watch, watch_cli, sources, live, tracking, events, hooks, mqtt). The face
models and their thresholds are ``happyhouse.face``."""
