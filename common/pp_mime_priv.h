/*
 * pp_mime_priv.h - what the MIME writer's two files share (pp_mime.c
 * writes, pp_mime_check.c checks); not for other modules.
 */
#ifndef PP_MIME_PRIV_H
#define PP_MIME_PRIV_H

#include <stddef.h>

#include "pp_mime.h"

/* pp_mime_domain_valid - letters, digits, hyphens and dots, labels of
 * 1..63 characters, 1..253 in all. */
int pp_mime_domain_valid(const char *d, size_t len);
/* pp_mime_check_spec - every value of the spec may be written; else -1
 * and err naming the problem. GMime must be initialised. */
int pp_mime_check_spec(const pp_mime_spec_t *s, char *err, size_t errlen);

#endif
