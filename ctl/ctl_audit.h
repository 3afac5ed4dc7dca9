/*
 * ctl_audit.h - what the CLI records in the audit trail around each command
 * (ctl_audit.c) and the `practicepost audit` listing (cmd_audit.c). Every
 * row's actor is the operator (pp_audit_operator).
 */
#ifndef CTL_AUDIT_H
#define CTL_AUDIT_H

#include "ctl.h"

/* ctl_audit_begin - before a command runs (argv as the command sees it):
 * remembers what was written so far and records a look at patient data
 * (`message show --body`) first. 0, or the exit code after printing why the
 * command must not run (the look could not be recorded). */
int ctl_audit_begin(ctl_t *ctl, int argc, char **argv);

/* ctl_audit_end - after it ran with exit code rc: records an operator
 * restart or an export, and a settings change the command made without
 * recording it itself ("config_changed" / "person_changed" with the
 * command line; the database told which tables, see 016_audit.sql).
 * Returns rc, or CTL_FAIL when a change was made but not recorded. */
int ctl_audit_end(ctl_t *ctl, int argc, char **argv, int rc);

/* ctl_audit_command_line - "practicepost GROUP NAME ARGS" on one line, the
 * user:password part of URLs masked. Owned (free()). */
char *ctl_audit_command_line(const ctl_t *ctl, int argc, char **argv);

extern const ctl_command_t ctl_audit_commands[];

#endif
