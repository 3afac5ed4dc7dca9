/*
 * test_msg.c - the message catalogue: every type round-trips, and every
 * kind of bad frame is rejected with a reason (never a crash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "pp_msg.h"

static void test_round_trip_all_types(void **state)
{
	(void)state;
	for (int t = PP_MSG_NONE + 1; t < PP_MSG_TYPE_COUNT; t++) {
		pp_msg_t in, out;
		char err[256];
		size_t len;
		pp_msg_init(&in, (pp_msg_type_t)t, "test@host:1");
		/* Fill the body with a recognisable pattern of valid values. */
		memset(&in.u, 0, sizeof(in.u));
		switch (t) {
		case PP_MSG_WAKE:
			PP_MSG_SET(in.u.wake.stage, "sender");
			in.u.wake.message_id = 1234567890123LL;
			break;
		case PP_MSG_HEARTBEAT:
			PP_MSG_SET(in.u.heartbeat.stage, "fetcher");
			PP_MSG_SET(in.u.heartbeat.instance, "fetcher.1");
			PP_MSG_SET(in.u.heartbeat.state, "running");
			in.u.heartbeat.pid = 4242;
			in.u.heartbeat.pending = -1;
			in.u.heartbeat.processed = INT64_MAX;
			break;
		case PP_MSG_EVENT:
			PP_MSG_SET(in.u.event.kind, "stage_restarted");
			PP_MSG_SET(in.u.event.detail, "killed by signal 9 — grüße");
			in.u.event.status = -9;
			break;
		case PP_MSG_CONTROL:
			PP_MSG_SET(in.u.control.command, "restart");
			PP_MSG_SET(in.u.control.stage, "sms");
			break;
		case PP_MSG_REPLY:
			in.u.reply.ok = 1;
			PP_MSG_SET(in.u.reply.text, "restarted sms.1 (pid 99)");
			break;
		case PP_MSG_SELFTEST:
			PP_MSG_SET(in.u.selftest.check, "smtp_login");
			in.u.selftest.ok = 0;
			break;
		}
		void *data = pp_msg_encode(&in, &len);
		assert_non_null(data);
		assert_int_equal(pp_msg_decode(data, len, &out, err, sizeof(err)), 0);
		assert_int_equal(out.type, t);
		assert_int_equal(out.ts_ms, in.ts_ms);
		assert_string_equal(out.from, "test@host:1");
		assert_memory_equal(&out.u, &in.u, sizeof(in.u));
		free(data);
	}
}

static void test_encode_truncates_long_strings(void **state)
{
	(void)state;
	pp_msg_t in, out;
	char err[256], big[200];
	size_t len;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pp_msg_init(&in, PP_MSG_WAKE, "a");
	assert_int_equal(PP_MSG_SET(in.u.wake.stage, big), -1);
	void *data = pp_msg_encode(&in, &len);
	assert_int_equal(pp_msg_decode(data, len, &out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out.u.wake.stage), 32);
	free(data);
}

/* Frame builders for the rejection table. */
typedef void (*frame_fn)(msgpack_packer *pk);

static void pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void envelope(msgpack_packer *pk, int version, const char *type, int body_entries)
{
	msgpack_pack_map(pk, 5);
	pk_str(pk, "v");
	msgpack_pack_int(pk, version);
	pk_str(pk, "type");
	pk_str(pk, type);
	pk_str(pk, "ts");
	msgpack_pack_int64(pk, 1);
	pk_str(pk, "from");
	pk_str(pk, "x");
	pk_str(pk, "body");
	msgpack_pack_map(pk, body_entries);
}

static void f_not_map(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_int(pk, 1);
}
static void f_short_map(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 1);
	pk_str(pk, "v");
	msgpack_pack_int(pk, 1);
}
static void f_bad_version(msgpack_packer *pk)
{
	envelope(pk, 99, "wake", 2);
	pk_str(pk, "stage");
	pk_str(pk, "sender");
	pk_str(pk, "message_id");
	msgpack_pack_int(pk, 0);
}
static void f_unknown_type(msgpack_packer *pk)
{
	envelope(pk, 1, "launch_missiles", 0);
}
static void f_unknown_field(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 3);
	pk_str(pk, "stage");
	pk_str(pk, "sender");
	pk_str(pk, "message_id");
	msgpack_pack_int(pk, 0);
	pk_str(pk, "extra");
	msgpack_pack_int(pk, 0);
}
static void f_missing_field(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 1);
	pk_str(pk, "stage");
	pk_str(pk, "sender");
}
static void f_repeated_field(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 2);
	pk_str(pk, "stage");
	pk_str(pk, "sender");
	pk_str(pk, "stage");
	pk_str(pk, "sms");
}
static void f_wrong_type_str(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 2);
	pk_str(pk, "stage");
	msgpack_pack_int(pk, 7);
	pk_str(pk, "message_id");
	msgpack_pack_int(pk, 0);
}
static void f_wrong_type_int(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 2);
	pk_str(pk, "stage");
	pk_str(pk, "sender");
	pk_str(pk, "message_id");
	pk_str(pk, "12");
}
static void f_oversized_str(msgpack_packer *pk)
{
	char big[64];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	envelope(pk, 1, "wake", 2);
	pk_str(pk, "stage");
	pk_str(pk, big);
	pk_str(pk, "message_id");
	msgpack_pack_int(pk, 0);
}
static void f_nul_in_str(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 2);
	pk_str(pk, "stage");
	msgpack_pack_str(pk, 3);
	msgpack_pack_str_body(pk, "a\0b", 3);
	pk_str(pk, "message_id");
	msgpack_pack_int(pk, 0);
}
static void f_huge_uint(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 2);
	pk_str(pk, "stage");
	pk_str(pk, "sender");
	pk_str(pk, "message_id");
	msgpack_pack_uint64(pk, UINT64_MAX);
}
static void f_body_not_map(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 5);
	pk_str(pk, "v");
	msgpack_pack_int(pk, 1);
	pk_str(pk, "type");
	pk_str(pk, "wake");
	pk_str(pk, "ts");
	msgpack_pack_int(pk, 1);
	pk_str(pk, "from");
	pk_str(pk, "x");
	pk_str(pk, "body");
	pk_str(pk, "nope");
}
static void f_repeated_envelope_key(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 5);
	for (int i = 0; i < 5; i++) {
		pk_str(pk, "v");
		msgpack_pack_int(pk, 1);
	}
}
static void f_unknown_envelope_key(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 5);
	pk_str(pk, "v");
	msgpack_pack_int(pk, 1);
	pk_str(pk, "type");
	pk_str(pk, "wake");
	pk_str(pk, "ts");
	msgpack_pack_int(pk, 1);
	pk_str(pk, "sender");
	pk_str(pk, "x");
	pk_str(pk, "body");
	msgpack_pack_map(pk, 0);
}
static void f_trailing_bytes(msgpack_packer *pk)
{
	envelope(pk, 1, "wake", 2);
	pk_str(pk, "stage");
	pk_str(pk, "sender");
	pk_str(pk, "message_id");
	msgpack_pack_int(pk, 0);
	msgpack_pack_int(pk, 42); /* a second object after the message */
}

static const struct {
	const char *name;
	frame_fn build;
	const char *reason;
} bad_frames[] = {
    {"not a map", f_not_map, "5-entry map"},
    {"short map", f_short_map, "5-entry map"},
    {"bad version", f_bad_version, "version"},
    {"unknown type", f_unknown_type, "unknown type"},
    {"unknown field", f_unknown_field, "unknown field"},
    {"missing field", f_missing_field, "missing"},
    {"repeated field", f_repeated_field, "repeated"},
    {"string field holds int", f_wrong_type_str, "not a string"},
    {"int field holds string", f_wrong_type_int, "not an integer"},
    {"oversized string", f_oversized_str, "exceeds"},
    {"NUL in string", f_nul_in_str, "NUL"},
    {"uint beyond int64", f_huge_uint, "not an integer"},
    {"body not a map", f_body_not_map, "not a map"},
    {"repeated envelope key", f_repeated_envelope_key, "repeated"},
    {"unknown envelope key", f_unknown_envelope_key, "unknown envelope key"},
    {"trailing bytes", f_trailing_bytes, "unread bytes"},
};

static void test_rejects_bad_frames(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); i++) {
		msgpack_sbuffer sbuf;
		msgpack_packer pk;
		pp_msg_t out;
		char err[256] = "";
		msgpack_sbuffer_init(&sbuf);
		msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
		bad_frames[i].build(&pk);
		int rc = pp_msg_decode(sbuf.data, sbuf.size, &out, err, sizeof(err));
		if (rc != -1 || strstr(err, bad_frames[i].reason) == NULL)
			fail_msg("%s: rc=%d err=\"%s\" (wanted \"%s\")", bad_frames[i].name, rc,
			         err, bad_frames[i].reason);
		assert_int_equal(out.type, PP_MSG_NONE);
		msgpack_sbuffer_destroy(&sbuf);
	}
}

static void test_rejects_raw_garbage(void **state)
{
	(void)state;
	pp_msg_t out;
	char err[256];
	static const unsigned char junk[] = {0xc1, 0xff, 0x00, 0x12};
	assert_int_equal(pp_msg_decode(junk, sizeof(junk), &out, err, sizeof(err)), -1);
	assert_int_equal(pp_msg_decode(NULL, 0, &out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "empty"));
	/* A truncated valid frame. */
	pp_msg_t in;
	size_t len;
	pp_msg_init(&in, PP_MSG_HEARTBEAT, "x");
	void *data = pp_msg_encode(&in, &len);
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(pp_msg_decode(data, cut, &out, err, sizeof(err)), -1);
	free(data);
	/* A tiny frame that claims a huge map must not make anyone allocate. */
	static const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v'};
	assert_int_equal(pp_msg_decode(huge_map, sizeof(huge_map), &out, err, sizeof(err)), -1);
	static const unsigned char huge_str[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
	assert_int_equal(pp_msg_decode(huge_str, sizeof(huge_str), &out, err, sizeof(err)), -1);
	/* Oversized frame. */
	size_t big = PP_MSG_MAX_FRAME + 1;
	unsigned char *buf = calloc(1, big);
	assert_int_equal(pp_msg_decode(buf, big, &out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exceeds"));
	free(buf);
}

/* Random bytes must never crash the decoder. */
static void test_fuzz_random_frames(void **state)
{
	(void)state;
	unsigned seed = 12345;
	unsigned char buf[256];
	pp_msg_t out;
	char err[256];
	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rand_r(&seed) % (int)sizeof(buf)) + 1;
		for (size_t j = 0; j < n; j++)
			buf[j] = (unsigned char)rand_r(&seed);
		(void)pp_msg_decode(buf, n, &out, err, sizeof(err));
	}
	/* Mutations of a valid frame. */
	pp_msg_t in;
	size_t len;
	pp_msg_init(&in, PP_MSG_EVENT, "x");
	void *data = pp_msg_encode(&in, &len);
	for (int i = 0; i < 20000; i++) {
		memcpy(buf, data, len < sizeof(buf) ? len : sizeof(buf));
		buf[rand_r(&seed) % len] = (unsigned char)rand_r(&seed);
		(void)pp_msg_decode(buf, len, &out, err, sizeof(err));
	}
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_all_types),
	    cmocka_unit_test(test_encode_truncates_long_strings),
	    cmocka_unit_test(test_rejects_bad_frames),
	    cmocka_unit_test(test_rejects_raw_garbage),
	    cmocka_unit_test(test_fuzz_random_frames),
	};
	return cmocka_run_group_tests_name("pp_msg", tests, NULL, NULL);
}
