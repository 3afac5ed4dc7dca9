/*
 * pp_secret.h - AES-256-GCM encryption of account secrets at rest.
 * Stored form: "v1" ':' base64(nonce[12] | ciphertext | tag[16]).
 * The key file holds 64 hex digits (32 bytes) and must not be readable by
 * group or others.
 */
#ifndef PP_SECRET_H
#define PP_SECRET_H

#include <stddef.h>

#define PP_SECRET_KEY_LEN 32

typedef struct {
	unsigned char key[PP_SECRET_KEY_LEN];
} pp_secret_key_t;

/* pp_secret_no_core_dumps - set RLIMIT_CORE to 0 (soft and hard), so no
 * core file of this process (or its children) ever holds a key or a
 * decrypted secret. Every daemon calls it at start, and
 * pp_secret_key_load before it reads a key. -1 with err on failure. */
int pp_secret_no_core_dumps(char *err, size_t errlen);
/* pp_secret_key_load - read and check the key file (no group or other
 * permission bits, a regular file); -1 with err on failure. */
int pp_secret_key_load(const char *path, pp_secret_key_t *key, char *err, size_t errlen);
/* pp_secret_key_generate - create a new key file (mode 0600); fails if it exists. */
int pp_secret_key_generate(const char *path, char *err, size_t errlen);

/* pp_secret_encrypt - returns an owned NUL-terminated stored form. */
char *pp_secret_encrypt(const pp_secret_key_t *key, const char *plain, size_t len);
/* pp_secret_decrypt - returns owned plaintext (NUL-terminated) or NULL if
 * the stored form is malformed or does not authenticate with this key. */
char *pp_secret_decrypt(const pp_secret_key_t *key, const char *stored, size_t *len);
/* pp_secret_wipe_free - zero then free a plaintext secret. */
void pp_secret_wipe_free(char *plain);

#endif
