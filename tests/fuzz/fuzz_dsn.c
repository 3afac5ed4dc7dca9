/*
 * fuzz_dsn.c - libFuzzer target for bounce parsing (fetcher_dsn.c and
 * fetcher_classify.c): the input is parsed by GMime and classified as the
 * fetcher does; the text reader for non-standard bounces also runs on
 * every message, whatever its kind. What comes out is checked against
 * fetcher_classify.h's promises.
 */
#include <gmime/gmime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher_classify.h"
#include "fuzz_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_mime_init();
	return 0;
}

/* dsn_text_read - the non-standard reader, on a delayed or failed guess. */
static void dsn_text_read(GMimeMessage *msg, int delayed)
{
	fetcher_classify_t c;
	fetcher_dsn_text_t t;
	memset(&c, 0, sizeof(c));
	c.kind = FETCHER_KIND_BOUNCE;
	c.delayed = delayed;
	fetcher_dsn_text_load(msg, &t);
	if (t.text.data == NULL || t.explain > t.text.len || t.text.len > FETCHER_DSN_MAX_TEXT)
		abort();
	fetcher_dsn_text_read(msg, &t, &c);
	fetcher_dsn_text_free(&t);
	fuzz_check_classify(&c);
	fetcher_classify_clear(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fetcher_classify_t c;
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)data, size);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	memset(&c, 0, sizeof(c));
	fetcher_classify(msg, &c);
	fuzz_check_classify(&c);
	fetcher_classify_clear(&c);
	if (msg != NULL) {
		dsn_text_read(msg, size > 0 && (data[0] & 1));
		g_object_unref(msg);
	}
	char *line = fetcher_classify_line((const char *)data, size, size > 0 ? data[0] : 0);
	fuzz_check_text(line, 1);
	if (line != NULL && (line[0] == '\0' || strlen(line) > (size > 0 ? data[0] : 0u)))
		abort();
	free(line);
	return 0;
}
