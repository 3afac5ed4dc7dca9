/*
 * ctl_account.h - what the CLI's email account files share:
 * cmd_account_test.c runs the credential test, cmd_account_email.c
 * (`account add-email`) runs it on the account it has just saved.
 */
#ifndef CTL_ACCOUNT_H
#define CTL_ACCOUNT_H

#include <stdint.h>
#include <stdio.h>

#include "ctl.h"

typedef struct {
	int failed_step;  /* 0: passed; else the step (1..7) that failed */
	int service_down; /* the service was not there to run the test */
	int enabled;      /* the account is enabled after the test */
} ctl_account_test_t;

/* ctl_account_test_run - the credential test of account through the
 * running service, each step printed to out as it arrives (nothing with
 * --json); a failure is recorded on the account, a first pass enables it.
 * CTL_OK with *result filled, or an exit code (the reason printed) when
 * the test could not be run or its outcome not read. */
int ctl_account_test_run(ctl_t *ctl, int64_t account, FILE *out, ctl_account_test_t *result);

#endif
