/*
 * watchdog_metrics.h - what the two files of the metrics endpoint share:
 * the Prometheus text helpers (watchdog_metrics.c) and the cached database
 * figures (watchdog_metrics_db.c).
 */
#ifndef WATCHDOG_METRICS_H
#define WATCHDOG_METRICS_H

#include <stdint.h>

#include "pp_util.h"

/* wd_prom_family - the HELP and TYPE lines of one metric family. */
void wd_prom_family(pp_buf_t *b, const char *name, const char *type, const char *help);
/* wd_prom_label - name="value" with \, " and newline escaped; sep goes
 * before it ("{" or ","). */
void wd_prom_label(pp_buf_t *b, const char *sep, const char *name, const char *value);

typedef struct wd_metrics_db wd_metrics_db_t;

/* wd_metrics_db_new - figures cached for cache_ms; a failed database is
 * tried again after retry_ms. Free with wd_metrics_db_free. */
wd_metrics_db_t *wd_metrics_db_new(const char *conninfo, const char *appname, int64_t cache_ms,
                                   int64_t retry_ms);
void wd_metrics_db_free(wd_metrics_db_t **m);
/* wd_metrics_db_configure - a new conninfo or cache time after a reload. */
void wd_metrics_db_configure(wd_metrics_db_t *m, const char *conninfo, int64_t cache_ms,
                             int64_t retry_ms);
/* wd_metrics_db_render - append the database families to out, refreshing
 * them first if the cache is older than cache_ms. Thread-safe. */
void wd_metrics_db_render(wd_metrics_db_t *m, pp_buf_t *out);

#endif
