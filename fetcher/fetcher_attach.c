/*
 * fetcher_attach.c - the attachments rows of a stored incoming message
 * that carry their decoded bytes: the parts the database cannot decode
 * from the raw message (the others are stored with the message,
 * fetcher_rows.c), and the exact bytes of a message whose text had to be
 * cleaned ("original.eml").
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

int fetcher_attach_store(pp_db_t *db, int64_t msg_id, const fetcher_parsed_t *p)
{
	char msg[PP_LL_LEN];
	pp_lltoa(msg, msg_id);
	for (size_t i = 0; i < p->nattachments; i++) {
		const fetcher_attachment_t *a = &p->attachments[i];
		if (a->raw_encoding != NULL && !p->body_lossy)
			continue; /* stored with the message (fetcher_rows.c) */
		if (store_attachment(db, msg, a->filename, a->content_type, a->part_path,
		                     a->content_id, a->data, a->len, a->sha256) != 0)
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
