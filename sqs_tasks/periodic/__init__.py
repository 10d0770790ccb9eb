"""Periodic tasks: cron and rate schedules on EventBridge Scheduler, one result per firing."""
