"""`edgec tune`: MetaSchedule search on top of edgec's rule-based schedules.

records.py  the portable records file (JSON, keyed by kernel structure + target)
tasks.py    tuning tasks = fused kernels of the module the compile path builds
measure.py  builder / local or RPC runner, timing a scheduled kernel
search.py   per-task MetaSchedule search seeded with the rule schedule and earlier records
progress.py one line per task, in place on a TTY
apply.py    compile-time use of a records file
driver.py   tune_model: the whole run, resumable
"""
