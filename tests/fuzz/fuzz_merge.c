/*
 * fuzz_merge.c - libFuzzer target for the template parser and the merge
 * (common/pp_merge.c). Input: one byte choosing the mode (text, HTML,
 * header), one byte choosing a field left without a value, then the
 * template. It is parsed, rendered with a fixed set of field values (some
 * holding markup, braces, line breaks and non-ASCII text), and read as
 * HTML for the plain-text alternative.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_merge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
	pp_merge_field_t missing; /* PP_FIELD_COUNT: every field has a value */
} merge_ctx_t;

static const char *merge_value(void *ctx, pp_merge_field_t field)
{
	const merge_ctx_t *c = ctx;
	if (field == c->missing)
		return NULL;
	switch (field) {
	case PP_FIELD_PATIENT_FIRST_NAME:
		return "Zo\xc3\xab";
	case PP_FIELD_PATIENT_LAST_NAME:
		return "O'Brien & <Sons>";
	case PP_FIELD_PRACTICE_NAME:
		return "{{patient.first_name}} Dental";
	case PP_FIELD_APPOINTMENT_BOOKING_LINK:
		return "https://book.example/a?b=1&c=\"2\"";
	case PP_FIELD_FAMILY_APPOINTMENTS:
		return "Anna: 3 December 2024 14:30\nBen: 3 December 2024 15:00";
	case PP_FIELD_PRACTICE_ADDRESS:
		return "1 High Street\r\nNorthtown";
	case PP_FIELD_APPOINTMENT_DESCRIPTION:
		return "";
	default:
		return "value \xe2\x82\xac";
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const pp_merge_mode_t modes[] = {PP_MERGE_TEXT, PP_MERGE_HTML, PP_MERGE_HEADER};
	char err[256];
	if (size < 2)
		return 0;
	merge_ctx_t ctx = {(pp_merge_field_t)(data[1] % (PP_FIELD_COUNT + 1))};
	char *text = strndup((const char *)data + 2, size - 2);
	pp_merge_template_t *tpl = pp_merge_parse(text, err, sizeof(err));
	if (tpl == NULL) {
		if (err[0] == '\0' || pp_merge_validate(text, err, sizeof(err)) == 0)
			abort();
	} else {
		pp_buf_t out;
		pp_buf_init(&out);
		for (int g = 0; g < PP_MERGE_GROUP_COUNT; g++)
			(void)pp_merge_uses_group(tpl, (pp_merge_group_t)g);
		if (pp_merge_render(tpl, modes[data[0] % 3], merge_value, &ctx, &out, err,
		                    sizeof(err)) == 0 &&
		    ctx.missing != PP_FIELD_COUNT && pp_merge_uses(tpl, ctx.missing))
			abort(); /* a missing value must fail the render */
		pp_buf_free(&out);
		pp_merge_template_free(&tpl);
	}
	char *plain = pp_merge_html_to_text(text);
	pp_buf_t html;
	pp_buf_init(&html);
	pp_merge_text_to_html(&html, plain);
	pp_buf_free(&html);
	free(plain);
	(void)pp_merge_check_text("template", text, data[0] & 4, err, sizeof(err));
	free(text);
	return 0;
}
