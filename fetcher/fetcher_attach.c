/*
 * fetcher_attach.c - the attachments rows of a stored incoming message:
 * each part by its place in the raw message where the database can decode
 * it from there (pp_attachment_data), else with its decoded bytes; and the
 * exact bytes of a message whose text had to be cleaned ("original.eml").
 * Runs inside the store's transaction (fetcher_store.c).
 */
#include <glib.h>

#include "fetcher.h"
#include "pp_util.h"

/* store_attachment - one row of attachments with the decoded bytes. */
static int store_attachment(pp_db_t *db, const char *msg, const char *filename, const char *type,
                            const char *part, const char *cid, const unsigned char *data,
                            size_t len, const char *sha256)
{
	char size[PP_LL_LEN];
	gchar *b64 = g_base64_encode(data, len);
	int rc = pp_db_command_prepared(
	    db,
	    "INSERT INTO attachments (message_id, filename, content_type, data, size_bytes, "
	    "sha256, part_path, content_id) VALUES ($1, $2, $3, decode($4, 'base64'), $5, $6, "
	    "$7, $8)",
	    PP_DB_ARGS(msg, filename, type, b64, pp_lltoa(size, (long long)len), sha256, part,
	               cid));
	g_free(b64);
	return rc;
}

/* store_attachment_at - one row of attachments whose bytes the database
 * decodes from the raw message (pp_attachment_data). */
static int store_attachment_at(pp_db_t *db, const char *msg, const fetcher_attachment_t *a)
{
	char size[PP_LL_LEN], offset[PP_LL_LEN], length[PP_LL_LEN];
	return pp_db_command_prepared(
	    db,
	    "INSERT INTO attachments (message_id, filename, content_type, size_bytes, sha256, "
	    "part_path, content_id, raw_offset, raw_length, raw_encoding) VALUES ($1, $2, $3, "
	    "$4, $5, $6, $7, $8, $9, $10)",
	    PP_DB_ARGS(msg, a->filename, a->content_type, pp_lltoa(size, (long long)a->len),
	               a->sha256, a->part_path, a->content_id, pp_lltoa(offset, a->raw_offset),
	               pp_lltoa(length, a->raw_length), a->raw_encoding));
}

int fetcher_attach_store(pp_db_t *db, int64_t msg_id, const fetcher_parsed_t *p)
{
	char msg[PP_LL_LEN];
	pp_lltoa(msg, msg_id);
	for (size_t i = 0; i < p->nattachments; i++) {
		const fetcher_attachment_t *a = &p->attachments[i];
		int rc = a->raw_encoding != NULL && !p->body_lossy
		             ? store_attachment_at(db, msg, a)
		             : store_attachment(db, msg, a->filename, a->content_type, a->part_path,
		                                a->content_id, a->data, a->len, a->sha256);
		if (rc != 0)
			return -1;
	}
	return 0;
}

int fetcher_attach_original(pp_db_t *db, int64_t msg_id, const char *raw, size_t len,
                            const char *sha256)
{
	char id[PP_LL_LEN];
	return store_attachment(db, pp_lltoa(id, msg_id), "original.eml", "message/rfc822", NULL,
	                        NULL, (const unsigned char *)raw, len, sha256);
}
