"""The job queue's engines, one per database dialect; see :mod:`trunkline.jobs.engine`."""
