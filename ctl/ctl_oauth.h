/*
 * ctl_oauth.h - what the CLI's OAuth2 files share: cmd_account_oauth.c
 * (settings, device sign-in, show) and cmd_account_pkce.c (browser
 * sign-in with PKCE and a loopback redirect).
 */
#ifndef CTL_OAUTH_H
#define CTL_OAUTH_H

#include "ctl.h"
#include "pp_oauth_token.h"

/* ctl_oauth_store - store a sign-in's tokens and print who signed in. */
int ctl_oauth_store(ctl_t *ctl, const pp_oauth_config_t *c, const pp_oauth_tokens_t *t);
/* ctl_oauth_browser - authorization code + PKCE with a listener on
 * 127.0.0.1:port (0: any free port); exit code. */
int ctl_oauth_browser(ctl_t *ctl, const pp_oauth_config_t *c, int port, int64_t timeout_s);
/* ctl_oauth_print - sign-in state and warnings of one OAuth2 account (or
 * all, account 0); the number of warnings, or -1 on a database error. */
int ctl_oauth_print(ctl_t *ctl, int64_t account);

#endif
