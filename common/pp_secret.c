/*
 * pp_secret.c - AES-256-GCM with OpenSSL's EVP interface; random 96-bit
 * nonces from RAND_bytes. The "v1:" prefix leaves room for key rotation.
 */
#include "pp_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp_log.h"
#include "pp_util.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX "v1:"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int pp_secret_no_core_dumps(char *err, size_t errlen)
{
	const struct rlimit none = {.rlim_cur = 0, .rlim_max = 0};
	if (setrlimit(RLIMIT_CORE, &none) != 0) {
		snprintf(err, errlen, "cannot turn core dumps off (setrlimit RLIMIT_CORE): %s",
		         strerror(errno));
		return -1;
	}
	return 0;
}

int pp_secret_key_load(const char *path, pp_secret_key_t *key, char *err, size_t errlen)
{
	char text[130];
	struct stat st;
	if (pp_secret_no_core_dumps(err, errlen) != 0)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "key file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		         "key file %s: mode %04o lets group or others read it; refusing to use it "
		         "(run: chmod 600 %s)",
		         path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	text[n] = '\0';
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	if (n != 2 * PP_SECRET_KEY_LEN) {
		snprintf(err, errlen, "key file %s: expected %d hex digits", path,
		         2 * PP_SECRET_KEY_LEN);
		return -1;
	}
	for (int i = 0; i < PP_SECRET_KEY_LEN; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			snprintf(err, errlen, "key file %s: not hexadecimal", path);
			OPENSSL_cleanse(text, sizeof(text));
			return -1;
		}
		key->key[i] = (unsigned char)(hi << 4 | lo);
	}
	OPENSSL_cleanse(text, sizeof(text));
	return 0;
}

int pp_secret_key_generate(const char *path, char *err, size_t errlen)
{
	unsigned char raw[PP_SECRET_KEY_LEN];
	char text[2 * PP_SECRET_KEY_LEN + 2];
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(err, errlen, "no random bytes available");
		return -1;
	}
	for (int i = 0; i < PP_SECRET_KEY_LEN; i++)
		snprintf(text + 2 * i, 3, "%02x", raw[i]);
	text[2 * PP_SECRET_KEY_LEN] = '\n';
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t w = write(fd, text, 2 * PP_SECRET_KEY_LEN + 1);
	int rc = (w == 2 * PP_SECRET_KEY_LEN + 1 && fsync(fd) == 0) ? 0 : -1;
	if (rc != 0)
		snprintf(err, errlen, "key file %s: write failed", path);
	close(fd);
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(text, sizeof(text));
	return rc;
}

char *pp_secret_encrypt(const pp_secret_key_t *key, const char *plain, size_t len)
{
	size_t raw_len = NONCE_LEN + len + TAG_LEN;
	unsigned char *raw = xmalloc(raw_len);
	int outl = 0, finl = 0;
	if (len > (size_t)INT32_MAX || RAND_bytes(raw, NONCE_LEN) != 1)
		fatalx("secret: cannot encrypt");
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->key, raw) != 1 ||
	    EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &outl, (const unsigned char *)plain,
	                      (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + outl, &finl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + len) != 1)
		fatalx("secret: AES-256-GCM encryption failed");
	EVP_CIPHER_CTX_free(ctx);
	size_t b64_len = 4 * ((raw_len + 2) / 3);
	char *out = xmalloc(strlen(PREFIX) + b64_len + 1);
	memcpy(out, PREFIX, strlen(PREFIX));
	EVP_EncodeBlock((unsigned char *)out + strlen(PREFIX), raw, (int)raw_len);
	free(raw);
	return out;
}

char *pp_secret_decrypt(const pp_secret_key_t *key, const char *stored, size_t *lenp)
{
	size_t plen = strlen(PREFIX);
	if (stored == NULL || strncmp(stored, PREFIX, plen) != 0)
		return NULL;
	const char *b64 = stored + plen;
	size_t b64_len = strlen(b64);
	if (b64_len == 0 || b64_len % 4 != 0 || b64_len > 1 << 20)
		return NULL;
	unsigned char *raw = xmalloc(b64_len);
	int n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64_len);
	if (n < 0) {
		free(raw);
		return NULL;
	}
	/* EVP_DecodeBlock counts padding bytes as data. */
	if (b64_len >= 1 && b64[b64_len - 1] == '=')
		n--;
	if (b64_len >= 2 && b64[b64_len - 2] == '=')
		n--;
	if (n < NONCE_LEN + TAG_LEN) {
		free(raw);
		return NULL;
	}
	/* Accept only the canonical encoding: no spare bits set in padding. */
	char *canon = xmalloc(b64_len + 1);
	EVP_EncodeBlock((unsigned char *)canon, raw, n);
	int canonical = strcmp(canon, b64) == 0;
	free(canon);
	if (!canonical) {
		free(raw);
		return NULL;
	}
	size_t len = (size_t)n - NONCE_LEN - TAG_LEN;
	char *plain = xmalloc(len + 1);
	int outl = 0, finl = 0, ok;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	ok =
	    ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->key, raw) == 1 &&
	    EVP_DecryptUpdate(ctx, (unsigned char *)plain, &outl, raw + NONCE_LEN, (int)len) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + len) == 1 &&
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + outl, &finl) == 1;
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	if (!ok) {
		OPENSSL_cleanse(plain, len + 1);
		free(plain);
		return NULL;
	}
	plain[len] = '\0';
	if (lenp)
		*lenp = len;
	return plain;
}

void pp_secret_wipe_free(char *plain)
{
	if (plain == NULL)
		return;
	OPENSSL_cleanse(plain, strlen(plain));
	free(plain);
}
