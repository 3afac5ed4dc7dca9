/*
 * ctl_table.c - listings: a query result printed as an aligned table for
 * people or as a JSON array of objects (--json) for programs. Table cells
 * are sanitised (no control characters reach the terminal) and truncated
 * to the column's width; JSON always carries the full value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_log.h"

/* cell_put_text - append text with control characters and invalid UTF-8
 * replaced, stopping after width characters ("…" marks a cut). */
static void cell_put_text(pp_buf_t *out, const char *text, int width)
{
	int chars = 0, total = 0;
	uint32_t cp;
	for (const char *p = text; *p; p += ctl_utf8_decode(p, &cp))
		total++;
	for (const char *p = text; *p;) {
		int n = ctl_utf8_decode(p, &cp);
		if (width > 0 && total > width && chars == width - 1) {
			pp_buf_puts(out, "\xe2\x80\xa6");
			return;
		}
		if (cp == '\n' || cp == '\r' || cp == '\t')
			pp_buf_puts(out, " ");
		else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0xfffd)
			pp_buf_puts(out, "?");
		else
			pp_buf_append(out, p, (size_t)n);
		chars++;
		p += n;
	}
}

/* age_text - seconds as "0.4s", "12s", "3m12s", "2h03m", "3d04h". */
static void age_text(pp_buf_t *out, const char *text)
{
	double s = strtod(text, NULL);
	long long t = (long long)s;
	if (s < 0)
		pp_buf_printf(out, "in %.0fs", -s);
	else if (s < 10)
		pp_buf_printf(out, "%.1fs", s);
	else if (t < 60)
		pp_buf_printf(out, "%llds", t);
	else if (t < 3600)
		pp_buf_printf(out, "%lldm%02llds", t / 60, t % 60);
	else if (t < 86400)
		pp_buf_printf(out, "%lldh%02lldm", t / 3600, t % 3600 / 60);
	else
		pp_buf_printf(out, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
}

char *ctl_table_cell(const char *text, ctl_col_kind_t kind, int width)
{
	pp_buf_t out;
	char when[20];
	pp_buf_init(&out);
	if (text == NULL) {
		pp_buf_puts(&out, "-");
	} else if (kind == CTL_COL_BOOL) {
		pp_buf_puts(&out, strcmp(text, "t") == 0 ? "yes" : "no");
	} else if (kind == CTL_COL_AGE) {
		age_text(&out, text);
	} else if (kind == CTL_COL_TIME && strlen(text) >= 19 && text[10] == 'T') {
		/* 2024-05-01T10:00:00.123+00:00 -> 2024-05-01 10:00:00 */
		memcpy(when, text, 19);
		when[10] = ' ';
		when[19] = '\0';
		pp_buf_puts(&out, when);
	} else {
		cell_put_text(&out, text, width);
	}
	return pp_buf_steal(&out);
}

static int text_chars(const char *s)
{
	int n = 0;
	uint32_t cp;
	while (*s) {
		s += ctl_utf8_decode(s, &cp);
		n++;
	}
	return n;
}

void ctl_json_cell(ctl_json_t *j, const char *v, ctl_col_kind_t kind)
{
	if (v == NULL) {
		ctl_json_null(j);
		return;
	}
	switch (kind) {
	case CTL_COL_INT:
		ctl_json_int(j, strtoll(v, NULL, 10));
		break;
	case CTL_COL_BOOL:
		ctl_json_bool(j, strcmp(v, "t") == 0);
		break;
	case CTL_COL_AGE: {
		char num[64];
		snprintf(num, sizeof(num), "%.3f", strtod(v, NULL));
		ctl_json_raw(j, num);
		break;
	}
	case CTL_COL_JSON:
		ctl_json_raw(j, v);
		break;
	default:
		ctl_json_str(j, v);
	}
}

static int column_index(const PGresult *res, const ctl_column_t *col)
{
	int i = PQfnumber(res, col->key);
	if (i < 0)
		fatalx("listing: the query has no column \"%s\"", col->key);
	return i;
}

void ctl_json_rows(ctl_json_t *j, const PGresult *res, const ctl_column_t *cols, int ncols)
{
	ctl_json_begin_array(j);
	for (int r = 0; r < PQntuples(res); r++) {
		ctl_json_begin_object(j);
		for (int c = 0; c < ncols; c++) {
			if (cols[c].only == CTL_COL_TABLE_ONLY)
				continue;
			ctl_json_key(j, cols[c].key);
			ctl_json_cell(j, pp_db_value(res, r, column_index(res, &cols[c])),
			              cols[c].kind);
		}
		ctl_json_end_object(j);
	}
	ctl_json_end_array(j);
}

void ctl_print_rows(const ctl_t *ctl, const PGresult *res, const ctl_column_t *cols, int ncols)
{
	if (ctl->json) {
		ctl_json_t j;
		ctl_json_init(&j);
		ctl_json_rows(&j, res, cols, ncols);
		ctl_json_print(&j, stdout);
		return;
	}
	int rows = PQntuples(res);
	char **cells = xcalloc((size_t)(rows + 1) * (size_t)ncols, sizeof(char *));
	int *widths = xcalloc((size_t)ncols, sizeof(int));
	for (int c = 0; c < ncols; c++) {
		if (cols[c].only == CTL_COL_JSON_ONLY)
			continue;
		cells[c] = xstrdup(cols[c].header);
		widths[c] = text_chars(cells[c]);
		int idx = column_index(res, &cols[c]);
		for (int r = 0; r < rows; r++) {
			char *cell =
			    ctl_table_cell(pp_db_value(res, r, idx), cols[c].kind, cols[c].width);
			int w = text_chars(cell);
			if (w > widths[c])
				widths[c] = w;
			cells[(size_t)(r + 1) * (size_t)ncols + (size_t)c] = cell;
		}
	}
	for (int r = 0; r <= rows; r++) {
		int last = -1;
		for (int c = 0; c < ncols; c++)
			if (cols[c].only != CTL_COL_JSON_ONLY)
				last = c;
		for (int c = 0; c <= last; c++) {
			const char *cell = cells[(size_t)r * (size_t)ncols + (size_t)c];
			if (cols[c].only == CTL_COL_JSON_ONLY)
				continue;
			fputs(cell, stdout);
			if (c != last)
				printf("%*s", widths[c] - text_chars(cell) + 2, "");
		}
		putchar('\n');
	}
	for (size_t i = 0; i < (size_t)(rows + 1) * (size_t)ncols; i++)
		free(cells[i]);
	free(cells);
	free(widths);
}
