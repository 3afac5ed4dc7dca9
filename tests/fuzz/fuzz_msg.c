/*
 * fuzz_msg.c - libFuzzer target for the message catalogue's decoder
 * (common/pp_msg.c): any frame is decoded; a frame that decodes must
 * encode back to a frame that decodes to the same message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pp_msg_t msg, again;
	char err[256];
	size_t len = 0;
	if (pp_msg_decode(data, size, &msg, err, sizeof(err)) != 0) {
		if (msg.type != PP_MSG_NONE || err[0] == '\0')
			abort();
		return 0;
	}
	if (pp_msg_type_name(msg.type)[0] == '\0')
		abort();
	void *frame = pp_msg_encode(&msg, &len);
	if (frame == NULL || pp_msg_decode(frame, len, &again, err, sizeof(err)) != 0 ||
	    memcmp(&msg, &again, sizeof(msg)) != 0)
		abort();
	free(frame);
	return 0;
}
