/*
 * ctl_support.h - the support bundle of `practicepost support bundle|send`:
 * versions, schema, the configuration with its secrets removed, status,
 * open diagnostics, self-test failures, accounts (never a secret), queue
 * counts and the recent configuration changes. Never a message body, a
 * password, a token, the key or patient data beyond counts.
 * ctl_support_bundle.c builds it, ctl_support_redact.c removes secrets.
 */
#ifndef CTL_SUPPORT_H
#define CTL_SUPPORT_H

#include "ctl.h"

/* The PracticePost release; packagers pass -DPP_VERSION="...". */
#ifndef PP_VERSION
#define PP_VERSION "development build"
#endif

#define SUPPORT_REMOVED "(removed)"

/* support_bundle_build - the whole bundle as text (owned, free()); NULL
 * after printing why (no database). */
char *support_bundle_build(ctl_t *ctl);

/* support_redact_config - the configuration file as text, one line per
 * setting, comments dropped, every secret-like value replaced by
 * SUPPORT_REMOVED and the database conninfo without its password. */
void support_redact_config(const char *path, pp_buf_t *out);

/* support_mask_text - a copy of free text (a diagnostic, an audit detail)
 * with email addresses and phone numbers replaced (owned). */
char *support_mask_text(const char *text);

/* support_scrub - replace in text, in place, every occurrence of the
 * secrets it can know (the conninfo password, the key file's contents)
 * and every pp_secret stored form ("v1:..."): a last line of defence. */
void support_scrub(ctl_t *ctl, pp_buf_t *text);

#endif
