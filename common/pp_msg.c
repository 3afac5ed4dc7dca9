/*
 * pp_msg.c - msgpack encode/decode driven by the catalogue in pp_msg.h.
 * Field tables (name, kind, bound, offset) are generated from the same
 * X-macros as the structs, so the two cannot disagree.
 */
#include "pp_msg.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_util.h"

typedef struct {
	const char *name;
	int is_str;
	size_t max;
	size_t offset;
} field_desc_t;

typedef struct {
	const char *name;
	const field_desc_t *fields;
	size_t count;
} type_desc_t;

#define DESC_S(T, fname, fmax) {#fname, 1, (fmax), offsetof(T, fname)},
#define DESC_I(T, fname) {#fname, 0, 0, offsetof(T, fname)},
#define DESC_FIELDS(ENUM, name, FIELDS)                                                            \
	static const field_desc_t name##_fields[] = {FIELDS(DESC_S, DESC_I, pp_msg_##name##_t)};
PP_MSG_TYPES(DESC_FIELDS)

static const type_desc_t types[PP_MSG_TYPE_COUNT] = {[PP_MSG_NONE] = {"none", NULL, 0},
#define DESC_TYPE(ENUM, name, FIELDS)                                                              \
	[PP_MSG_##ENUM] = {#name, name##_fields, sizeof(name##_fields) / sizeof(field_desc_t)},
                                                     PP_MSG_TYPES(DESC_TYPE)
#undef DESC_TYPE
};

/* Every union member starts at the union's address. */
static char *msg_body(pp_msg_t *msg)
{
	return (char *)&msg->u;
}

void pp_msg_init(pp_msg_t *msg, pp_msg_type_t type, const char *from)
{
	memset(msg, 0, sizeof(*msg));
	msg->type = type;
	msg->ts_ms = pp_now_ms();
	PP_MSG_SET(msg->from, from ? from : "");
}

const char *pp_msg_type_name(pp_msg_type_t type)
{
	return (unsigned)type < PP_MSG_TYPE_COUNT ? types[type].name : "invalid";
}

int pp_msg_set_str(char *field, size_t field_size, const char *value)
{
	return pp_strlcpy(field, value ? value : "", field_size);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void *pp_msg_encode(const pp_msg_t *msg, size_t *len)
{
	const type_desc_t *td = &types[msg->type];
	if (msg->type <= PP_MSG_NONE || msg->type >= PP_MSG_TYPE_COUNT) {
		*len = 0;
		return NULL;
	}
	msgpack_sbuffer sbuf;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 5);
	pack_str(&pk, "v", 1);
	msgpack_pack_uint32(&pk, PP_MSG_VERSION);
	pack_str(&pk, "type", 4);
	pack_str(&pk, td->name, 32);
	pack_str(&pk, "ts", 2);
	msgpack_pack_int64(&pk, msg->ts_ms);
	pack_str(&pk, "from", 4);
	pack_str(&pk, msg->from, PP_MSG_FROM_MAX);
	pack_str(&pk, "body", 4);
	msgpack_pack_map(&pk, td->count);
	const char *body = (const char *)&msg->u;
	for (size_t i = 0; i < td->count; i++) {
		const field_desc_t *f = &td->fields[i];
		pack_str(&pk, f->name, 64);
		if (f->is_str)
			pack_str(&pk, body + f->offset, f->max);
		else {
			int64_t v;
			memcpy(&v, body + f->offset, sizeof(v));
			msgpack_pack_int64(&pk, v);
		}
	}
	*len = sbuf.size;
	/* sbuf.data was malloc'ed by msgpack; hand it over. */
	return sbuf.data;
}

static int key_is(const msgpack_object *k, const char *name)
{
	size_t n = strlen(name);
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       memcmp(k->via.str.ptr, name, n) == 0;
}

static int get_int(const msgpack_object *o, int64_t *out)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return -1;
		*out = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = o->via.i64;
		return 0;
	}
	return -1;
}

static int get_str(const msgpack_object *o, char *dst, size_t max, const char *what, char *err,
                   size_t errlen)
{
	if (o->type != MSGPACK_OBJECT_STR) {
		snprintf(err, errlen, "field %s: not a string", what);
		return -1;
	}
	if (o->via.str.size > max) {
		snprintf(err, errlen, "field %s: %u bytes exceeds %zu", what, o->via.str.size, max);
		return -1;
	}
	if (memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
		snprintf(err, errlen, "field %s: contains a NUL byte", what);
		return -1;
	}
	memcpy(dst, o->via.str.ptr, o->via.str.size);
	dst[o->via.str.size] = '\0';
	return 0;
}

static int decode_body(const msgpack_object *o, pp_msg_t *msg, char *err, size_t errlen)
{
	const type_desc_t *td = &types[msg->type];
	unsigned seen = 0;
	if (o->type != MSGPACK_OBJECT_MAP) {
		snprintf(err, errlen, "body is not a map");
		return -1;
	}
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		size_t f;
		for (f = 0; f < td->count; f++)
			if (key_is(&kv->key, td->fields[f].name))
				break;
		if (f == td->count) {
			snprintf(err, errlen, "%s: unknown field", td->name);
			return -1;
		}
		if (seen & (1u << f)) {
			snprintf(err, errlen, "%s: field %s repeated", td->name,
			         td->fields[f].name);
			return -1;
		}
		seen |= 1u << f;
		char *dst = msg_body(msg) + td->fields[f].offset;
		if (td->fields[f].is_str) {
			if (get_str(&kv->val, dst, td->fields[f].max, td->fields[f].name, err,
			            errlen) != 0)
				return -1;
		} else {
			int64_t v;
			if (get_int(&kv->val, &v) != 0) {
				snprintf(err, errlen, "field %s: not an integer",
				         td->fields[f].name);
				return -1;
			}
			memcpy(dst, &v, sizeof(v));
		}
	}
	for (size_t f = 0; f < td->count; f++)
		if (!(seen & (1u << f))) {
			snprintf(err, errlen, "%s: field %s missing", td->name, td->fields[f].name);
			return -1;
		}
	return 0;
}

static int decode_envelope(const msgpack_object *root, pp_msg_t *msg, char *err, size_t errlen)
{
	const msgpack_object *body = NULL;
	int64_t v;
	unsigned seen = 0;
	if (root->type != MSGPACK_OBJECT_MAP || root->via.map.size != 5) {
		snprintf(err, errlen, "frame is not a 5-entry map");
		return -1;
	}
	for (uint32_t i = 0; i < 5; i++) {
		const msgpack_object_kv *kv = &root->via.map.ptr[i];
		char tname[33];
		unsigned bit;
		if (key_is(&kv->key, "v")) {
			bit = 1;
			if (get_int(&kv->val, &v) != 0 || v != PP_MSG_VERSION) {
				snprintf(err, errlen, "unsupported version");
				return -1;
			}
		} else if (key_is(&kv->key, "type")) {
			bit = 2;
			if (get_str(&kv->val, tname, 32, "type", err, errlen) != 0)
				return -1;
			msg->type = PP_MSG_NONE;
			for (int t = 1; t < PP_MSG_TYPE_COUNT; t++)
				if (strcmp(tname, types[t].name) == 0)
					msg->type = (pp_msg_type_t)t;
			if (msg->type == PP_MSG_NONE) {
				snprintf(err, errlen, "unknown type \"%s\"", tname);
				return -1;
			}
		} else if (key_is(&kv->key, "ts")) {
			bit = 4;
			if (get_int(&kv->val, &msg->ts_ms) != 0) {
				snprintf(err, errlen, "field ts: not an integer");
				return -1;
			}
		} else if (key_is(&kv->key, "from")) {
			bit = 8;
			if (get_str(&kv->val, msg->from, PP_MSG_FROM_MAX, "from", err, errlen) != 0)
				return -1;
		} else if (key_is(&kv->key, "body")) {
			bit = 16;
			body = &kv->val;
		} else {
			snprintf(err, errlen, "unknown envelope key");
			return -1;
		}
		if (seen & bit) {
			snprintf(err, errlen, "envelope key repeated");
			return -1;
		}
		seen |= bit;
	}
	return decode_body(body, msg, err, errlen);
}

/*
 * msgpack_precheck - walk the headers of the first object in data and make
 * sure no container claims more elements than there are bytes left (each
 * element needs at least one). msgpack-c would otherwise allocate for the
 * claimed size first: a 5-byte frame could ask for gigabytes.
 */
static int msgpack_precheck(const unsigned char *p, size_t len)
{
	size_t pos = 0, pending = 1;
	while (pending > 0) {
		if (pos >= len)
			return -1;
		pending--;
		unsigned b = p[pos++];
		size_t skip = 0, count = 0, lenbytes = 0, extra = 0;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
			continue;
		if (b >= 0x80 && b <= 0x8f)
			count = 2 * (size_t)(b & 0x0f);
		else if (b >= 0x90 && b <= 0x9f)
			count = b & 0x0f;
		else if (b >= 0xa0 && b <= 0xbf)
			skip = b & 0x1f;
		else {
			switch (b) {
			case 0xc4:
			case 0xd9:
				lenbytes = 1;
				break;
			case 0xc5:
			case 0xda:
				lenbytes = 2;
				break;
			case 0xc6:
			case 0xdb:
				lenbytes = 4;
				break;
			case 0xc7:
				lenbytes = 1;
				extra = 1;
				break;
			case 0xc8:
				lenbytes = 2;
				extra = 1;
				break;
			case 0xc9:
				lenbytes = 4;
				extra = 1;
				break;
			case 0xca:
				skip = 4;
				break;
			case 0xcb:
				skip = 8;
				break;
			case 0xcc:
			case 0xd0:
				skip = 1;
				break;
			case 0xcd:
			case 0xd1:
				skip = 2;
				break;
			case 0xce:
			case 0xd2:
				skip = 4;
				break;
			case 0xcf:
			case 0xd3:
				skip = 8;
				break;
			case 0xd4:
				skip = 2;
				break;
			case 0xd5:
				skip = 3;
				break;
			case 0xd6:
				skip = 5;
				break;
			case 0xd7:
				skip = 9;
				break;
			case 0xd8:
				skip = 17;
				break;
			case 0xdc:
			case 0xde:
				lenbytes = 2;
				break;
			case 0xdd:
			case 0xdf:
				lenbytes = 4;
				break;
			default:
				return -1; /* 0xc1 is never used */
			}
		}
		if (lenbytes) {
			size_t n = 0;
			if (len - pos < lenbytes)
				return -1;
			for (size_t i = 0; i < lenbytes; i++)
				n = n << 8 | p[pos + i];
			pos += lenbytes;
			if (b >= 0xdc)
				count = b >= 0xde ? 2 * n : n;
			else
				skip = n + extra;
		}
		if (skip > len - pos)
			return -1;
		pos += skip;
		pending += count;
		if (pending > len - pos)
			return -1;
	}
	return 0;
}

int pp_msg_decode(const void *data, size_t len, pp_msg_t *msg, char *err, size_t errlen)
{
	msgpack_unpacked up;
	size_t off = 0;
	int rc = -1;
	memset(msg, 0, sizeof(*msg));
	if (data == NULL || len == 0) {
		snprintf(err, errlen, "empty frame");
		return -1;
	}
	if (len > PP_MSG_MAX_FRAME) {
		snprintf(err, errlen, "frame of %zu bytes exceeds %d", len, PP_MSG_MAX_FRAME);
		return -1;
	}
	if (msgpack_precheck(data, len) != 0) {
		snprintf(err, errlen, "not valid msgpack");
		return -1;
	}
	msgpack_unpacked_init(&up);
	msgpack_unpack_return ret = msgpack_unpack_next(&up, data, len, &off);
	if (ret != MSGPACK_UNPACK_SUCCESS)
		snprintf(err, errlen, "not valid msgpack");
	else if (off != len)
		snprintf(err, errlen, "%zu unread bytes after the message", len - off);
	else
		rc = decode_envelope(&up.data, msg, err, errlen);
	msgpack_unpacked_destroy(&up);
	if (rc != 0)
		msg->type = PP_MSG_NONE;
	return rc;
}
